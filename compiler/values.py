"""Readers for the values of statements: names, numbers, addresses, ports, rates.

Each reader takes AST values and returns a Python value, or raises
`DiagnosticError` with a message that says what was wrong, what was expected
and how to fix it.  The rules on names themselves live in
`compiler.identifiers`, shared with the plugin.
"""

from __future__ import annotations

import ipaddress
import re

from compiler.ast import ListValue, Statement, Text, Value, Word
from compiler.diagnostics import Diagnostic, DiagnosticError
from compiler.identifiers import RESERVED_NETWORK_NAMES, interface_name_problem, is_name
from compiler.ir import MAX_RATE, MIN_RATE, PROTOCOLS, IPAddress, IPNetwork, PortRule
from compiler.quantities import QuantityError, parse_quantity
from compiler.source import Span


def fail(
    code: str, message: str, span: Span | None, expected: str | None = None, hint: str | None = None
) -> DiagnosticError:
    """A `DiagnosticError` ready to raise."""
    return DiagnosticError(Diagnostic(code, message, span, expected=expected, hint=hint))


def words(statement: Statement, low: int, high: int | None, what: str) -> list[Word]:
    """The statement's values, all bare words, between `low` and `high` of them."""
    values = statement.values
    count_ok = low <= len(values) and (high is None or len(values) <= high)
    if not count_ok:
        span = values[high].span if high is not None and len(values) > high else statement.span
        raise fail(
            "E013", _count_message(statement.keyword, len(values), low, high), span, expected=what
        )
    found = []
    for value in values:
        if not isinstance(value, Word):
            raise fail(
                "E013",
                f"`{statement.keyword}` takes bare values, not {_kind(value)}",
                value.span,
                expected=what,
            )
        found.append(value)
    return found


def _count_message(keyword: str, count: int, low: int, high: int | None) -> str:
    if high == 0:
        return f"`{keyword}` takes no values"
    if count < low:
        return f"`{keyword}` needs a value" if low == 1 else f"`{keyword}` needs {low} values"
    return f"`{keyword}` takes at most {high} value{'s' if high != 1 else ''}"


def _kind(value: Value) -> str:
    if isinstance(value, Text):
        return "a quoted string"
    if isinstance(value, ListValue):
        return "a list"
    return "a block"


def one_word(statement: Statement, what: str) -> Word:
    """The single bare value of a statement."""
    return words(statement, 1, 1, what)[0]


def text(statement: Statement, what: str) -> str:
    """The single quoted-string value of a statement (paths and the like)."""
    values = statement.values
    if len(values) != 1 or not isinstance(values[0], Text | Word):
        raise fail("E013", f"`{statement.keyword}` needs one value", statement.span, expected=what)
    value = values[0]
    return value.value if isinstance(value, Text) else value.text


def switch(statement: Statement) -> bool:
    """`flag`, `flag on` or `flag off`."""
    values = words(statement, 0, 1, "on or off")
    if not values:
        return True
    word = values[0]
    if word.text in ("on", "off"):
        return word.text == "on"
    raise fail(
        "E013",
        f"`{statement.keyword}` is on or off, not `{word.text}`",
        word.span,
        expected="on or off",
        hint=f"write `{statement.keyword}` alone to turn it on",
    )


def integer(word: Word, low: int, high: int, what: str) -> int:
    """A decimal integer within [low, high]."""
    if not re.fullmatch(r"[0-9]+", word.text):
        raise fail("E013", f"`{word.text}` is not a whole number", word.span, expected=what)
    value = int(word.text)
    if not low <= value <= high:
        raise fail("E013", f"{value} is outside {low}..{high}", word.span, expected=what)
    return value


def network_name(word: Word | Text, what: str = "network") -> str:
    """A name libcni accepts for a network (it also names files and directories)."""
    name = word.text if isinstance(word, Word) else word.value
    if not is_name(name):
        raise fail(
            "E101",
            f"`{name}` is not a valid {what} name",
            word.span,
            expected="letters, digits, `_`, `.` and `-`, starting with a letter or digit",
            hint="CNI uses network names in file paths, so they are restricted like this"
            if what == "network"
            else None,
        )
    if what == "network" and name in RESERVED_NETWORK_NAMES:
        raise fail(
            "E101",
            f"`{name}` is reserved: netc's own files bear that name",
            word.span,
            expected="another name than " + " or ".join(f"`{n}`" for n in RESERVED_NETWORK_NAMES),
            hint=f"`{name}` names {RESERVED_NETWORK_NAMES[name]}, beside each "
            "network's own directory",
        )
    return name


def block_name(statement: Statement) -> str:
    """The one name of a `network NAME { ... }` or `template NAME { ... }` statement."""
    keyword, values = statement.keyword, statement.values
    expected = f"`{keyword} NAME {{ ... }}`"
    if not values:
        raise fail("E013", f"this {keyword} has no name", statement.key.span, expected=expected)
    if len(values) > 1:
        raise fail(
            "E013",
            f"a {keyword} has one name, not {len(values)}",
            values[1].span,
            expected=expected,
        )
    if not isinstance(values[0], Word | Text):
        raise fail(
            "E013",
            f"a {keyword} name is a word, not {_kind(values[0])}",
            values[0].span,
            expected=expected,
        )
    return network_name(values[0], keyword)


def interface_name(word: Word, what: str) -> str:
    """A Linux interface name: 1..15 bytes, no `/`, `:` or whitespace, not `.` or `..`."""
    name = word.text
    problem = interface_name_problem(name)
    if problem:
        raise fail(
            "E103",
            f"{what} name `{name}` {problem}",
            word.span,
            expected="1 to 15 bytes without `/`, `:` or spaces",
            hint="pick a shorter name such as cni0 or br-pods",
        )
    return name


def address(word: Word, what: str = "an IP address such as 10.244.1.1 or fd00::1") -> IPAddress:
    """An IPv4 or IPv6 address."""
    try:
        return ipaddress.ip_address(word.text)
    except ValueError:
        raise fail(
            "E201", f"`{word.text}` is not an IP address", word.span, expected=what
        ) from None


def cidr(word: Word) -> IPNetwork:
    """A network in CIDR notation with no host bits set."""
    expected = "a network such as 10.244.1.0/24 or fd00:10:244::/64"
    if "/" not in word.text:
        raise fail(
            "E201",
            f"`{word.text}` has no prefix length",
            word.span,
            expected=expected,
            hint=f"write `{word.text}/24` (or the prefix you mean)",
        )
    try:
        return ipaddress.ip_network(word.text, strict=True)
    except ValueError as error:
        if "host bits set" in str(error):
            network = ipaddress.ip_network(word.text, strict=False)
            raise fail(
                "E202",
                f"`{word.text}` has host bits set",
                word.span,
                expected="the network address of the subnet",
                hint=f"write `{network}`, the network that contains it",
            ) from None
        raise fail(
            "E201", f"`{word.text}` is not a valid CIDR", word.span, expected=expected
        ) from None


def port(text_value: str, span: Span) -> int:
    """A TCP/UDP port number 1..65535; a range written as iptables or nftables does gets a hint."""
    if not re.fullmatch(r"[0-9]+", text_value) or not 1 <= int(text_value) <= 65535:
        written = re.fullmatch(r"([0-9]+)\s*[-:]\s*([0-9]+)", text_value)
        raise fail(
            "E301",
            f"`{text_value}` is not a port number",
            span,
            expected="a port from 1 to 65535",
            hint=f"a range is written with two dots: `{written[1]}..{written[2]}`"
            if written
            else None,
        )
    return int(text_value)


def port_rule(word: Word, verb: str) -> PortRule:
    """`8080`, `30000..32767` or either with `/tcp`, `/udp` or `/sctp`."""
    ports, _, protocol = word.text.partition("/")
    if protocol and protocol not in PROTOCOLS:
        raise fail(
            "E301",
            f"`{protocol}` is not a protocol",
            word.span,
            expected="tcp, udp or sctp after the slash",
        )
    first_text, dots, last_text = ports.partition("..")
    first = port(first_text, word.span)
    last = port(last_text, word.span) if dots else first
    if last < first:
        raise fail(
            "E301",
            f"port range `{ports}` runs backwards",
            word.span,
            expected="FIRST..LAST with FIRST <= LAST",
            hint=f"write `{last}..{first}`",
        )
    return PortRule(verb, first, last, protocol or None, word.span)


def _quantity(word: Word, expected: str) -> int:
    try:
        return parse_quantity(word.text)
    except QuantityError as error:
        raise fail("E401", error.message, word.span, expected=expected, hint=error.hint) from None


def rate(word: Word) -> int:
    """A bandwidth in bit/s within what Kubernetes runtimes accept (1k .. 1P)."""
    value = _quantity(word, "a Kubernetes quantity in bits per second: 500k, 1M, 10Mi, 1G")
    if not MIN_RATE <= value <= MAX_RATE:
        hint = None
        if word.text.endswith("m"):
            hint = f"`m` means milli; for megabits write `{word.text[:-1]}M`"
        where = "below the slowest" if value < MIN_RATE else "above the fastest"
        raise fail(
            "E402",
            f"`{word.text}` is {where} rate netc accepts",
            word.span,
            expected="a rate from 1k (1000 bit/s) to 1P (10^15 bit/s)",
            hint=hint,
        )
    return value


def burst(word: Word) -> int:
    """A bucket size in bits; tc takes at most 2^32-1 bytes."""
    value = _quantity(word, "a Kubernetes quantity in bits, such as 1M or 512Ki")
    if not 8 <= value < (2**32 - 1) * 8:
        raise fail(
            "E402",
            f"burst `{word.text}` is outside 8 bits .. 4 GiB",
            word.span,
            expected="a burst of at least one byte and under 4 GiB",
        )
    return value


DURATION_UNITS = {"h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def duration(word: Word, low: int, high: int, what: str) -> int:
    """A duration in whole seconds within [low, high]: `60s`, `2m`, `1h30m`.

    Go's spelling, which etcd and Kubernetes users write, in whole seconds.
    A bare number is refused (seconds or minutes?), and so are fractions and
    units below a second; the hint says what to write instead.
    """
    expected = (
        f"{what}: a duration from {format_duration(low)} to {format_duration(high)}, "
        "such as 60s, 2m or 1h30m"
    )
    match = _DURATION.fullmatch(word.text)
    if match is None or not any(match.groups()):
        raise fail(
            "E617",
            f"`{word.text}` is not a duration",
            word.span,
            expected=expected,
            hint=_duration_hint(word.text),
        )
    seconds = sum(
        int(n) * unit for n, unit in zip(match.groups(), DURATION_UNITS.values(), strict=True) if n
    )
    if not low <= seconds <= high:
        bound = "shorter than" if seconds < low else "longer than"
        limit = format_duration(low if seconds < low else high)
        raise fail("E617", f"`{word.text}` is {bound} {limit}", word.span, expected=expected)
    return seconds


def format_duration(seconds: int) -> str:
    """Seconds as a duration is written: 86400 -> `24h`, 90 -> `1m30s`, 0 -> `0s`."""
    parts = []
    for unit, size in DURATION_UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _duration_hint(text: str) -> str | None:
    """What a duration that does not read was probably meant to be."""
    if re.fullmatch(r"[0-9]+", text):
        return f"give the unit: `{text}s` for seconds, `{text}m` for minutes"
    number = re.fullmatch(r"([0-9]*\.?[0-9]+)([a-zA-Zµ]+)", text)
    if number is None:
        return None
    value, unit = float(number[1]), number[2]
    if unit in ("ms", "us", "µs", "ns"):
        return "netc counts it in whole seconds: write `1s` or more"
    if unit == "d":
        return f"write `{format_duration(round(value * 86400))}`: units are h, m and s"
    size = DURATION_UNITS.get(unit.lower())
    if size is not None and (value * size).is_integer():
        return f"write `{format_duration(int(value * size))}`: whole numbers, units h, m and s"
    return "units are h (hours), m (minutes) and s (seconds)"
