"""Kubernetes quantities as bandwidth: `500k`, `1M`, `10Mi`, `1G`, read as bits.

The `kubernetes.io/ingress-bandwidth` annotation is a `resource.Quantity`
read as bits per second, so `1M` is 10^6 and `1Mi` is 2^20.  Users coming
from `tc` or from byte-based tools write `10MB`, `10mbit` or `10m`; those are
refused with a hint that names the quantity they most likely meant.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

DECIMAL: dict[str, Fraction | int] = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
BINARY: dict[str, int] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}

_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?$"
)
_BYTES_OR_BITS = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?)\s*(?P<prefix>[kKmMgGtT]?)(?P<binary>i?)"
    r"(?P<unit>B|b|bit|bits|bps|Bps|byte|bytes)(?:/s|ps)?$"
)


class QuantityError(ValueError):
    """Why a text is not a usable quantity, and what the user probably meant."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def parse_quantity(text: str) -> int:
    """The quantity as a whole number, rounded up as Kubernetes' `Quantity.Value()` does."""
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"`{text}` is not a Kubernetes quantity", _unit_hint(text))
    number = Fraction(match["number"])
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > 30:
            raise QuantityError(f"`{text}` is out of any sensible range")
        value = number * Fraction(10) ** exponent
    else:
        suffix = match["suffix"] or ""
        value = number * (BINARY.get(suffix) or DECIMAL[suffix])
    return math.ceil(value)


def format_quantity(value: int) -> str:
    """The shortest exact quantity for a whole number: 8000000 is `8M`, 1048576 `1Mi`.

    `parse_quantity(format_quantity(n)) == n`; decimal suffixes win a tie,
    as the annotations usually use them.
    """
    candidates = [str(value)]
    for suffix, factor in (*DECIMAL.items(), *BINARY.items()):
        if isinstance(factor, int) and factor > 1 and value % factor == 0:
            candidates.append(f"{value // factor}{suffix}")
    return min(candidates, key=len)


def _unit_hint(text: str) -> str | None:
    match = _BYTES_OR_BITS.match(text)
    if not match:
        return "write a number with an optional suffix: 500k, 1M, 10Mi, 1G (bits per second)"
    prefix = match["prefix"].upper()
    suffix = prefix + "i" if match["binary"] else prefix.replace("K", "k")
    number = Fraction(match["number"])
    if match["unit"] in ("B", "Bps", "byte", "bytes"):
        bits = number * 8
        shown = f"{int(bits)}" if bits.denominator == 1 else f"{float(bits):g}"
        return f"bandwidth is in bits per second: {text} is `{shown}{suffix}` (8 bits to the byte)"
    return f"write `{match['number']}{suffix}`: quantities carry no unit, they are bits per second"
