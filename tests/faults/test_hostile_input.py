"""Hostile CNI input, through the launcher as a runtime would send it.

Every CNI_* variable, stdin itself, the conflist's fields, every runtimeConfig
field and every CNI_ARGS value get payloads aimed at paths (../, absolute,
/proc/1/ns/net), at iptables-restore text (newlines, COMMIT, quotes, -j), at
the JSON decoder (depth), at number parsing (Infinity, NaN, 1e400, -1, 1.5,
true, " 80 ", huge integers) and at text decoding (non-UTF-8, NUL).  Each
case: no traceback, exactly one CNI error object on stdout with the code the
input deserves (never 999), nothing written outside the lab's state and data
directories, no rule holding the payload in any table of either family, and
nothing of the pod left.  A payload that is only a label (a pod's name) may
be accepted, with the same checks after its DEL.

Every payload carries the word `evil`, so a file or a rule made from one is
found by name.  Lean by default (a spread of each group); NETC_FAULTS_LONG=1
runs every case.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from compiler import ir_codec
from tests.faults import calls
from tests.faults.state import assert_clean, rules
from tests.kernel import networks
from tests.kernel.lab import Lab, Pod

BAD_ENVIRONMENT, DECODE, BAD_CONFIG, INCOMPATIBLE = 4, 6, 7, 1
SUCCESS = 0
"""In `codes`: the input may be accepted (it is only a label)."""

PATHS = ["../evil", "../../../../../../tmp/evil", "/tmp/evil", "evil/../../../evil", "./evil"]
RULE_TEXT = [
    "x\nCOMMIT\n*filter\n-I INPUT 1 -m comment --comment evil -j DROP\nCOMMIT\n",
    'x" -m comment --comment "evil" -j ACCEPT',
    "x -j RETURN -m comment --comment evil",
    "x'; -A INPUT -j evil",
    "x\n-A POSTROUTING -j evil",
]
TEXTS = [*PATHS, *RULE_TEXT]
NOT_UTF8 = [b"\xffevil", b"evil\xc3(", b"evil\xed\xa0\x80"]
NUMBERS = [
    "Infinity",
    "-Infinity",
    "NaN",
    "1e400",
    "-1",
    "1.5",
    "true",
    '" 80 "',
    '"80"',
    "18446744073709551616",
    "1" + "0" * 30,
    "1e2",
    "[]",
    "{}",
    '"evil"',
]
BEYOND_U64 = ("18446744073709551616", "1" + "0" * 30)
HUGE_INTEGER = "1" + "0" * 5000
"""More digits than Python turns into an int (4300): the decoder refuses it."""
DEPTH = 100_000
RAW = "@@raw@@"
"""A JSON string that `_encode` replaces with raw JSON text (numbers json.dumps cannot write)."""


def _encode(document: Any, raw: str | None = None) -> bytes:
    text = json.dumps(document)
    if raw is not None:
        text = text.replace(json.dumps(RAW), raw)
    return text.encode()


@dataclass(frozen=True)
class Case:
    """One hostile call: how its stdin and environment differ from a good ADD."""

    target: str
    payload: Any
    codes: tuple[int, ...]
    stdin: Callable[[dict[str, Any]], bytes] = field(default=_encode)
    variables: dict[Any, Any] = field(default_factory=dict)
    command: str = "ADD"

    @property
    def id(self) -> str:
        text = self.payload if isinstance(self.payload, str) else repr(self.payload)
        return f"{self.target}={text[:40]!r}"


def _in_runtime_config(runtime_config: dict[str, Any], raw: str | None = None):
    def stdin(config: dict[str, Any]) -> bytes:
        return _encode({**config, "runtimeConfig": runtime_config}, raw)

    return stdin


def _with_fields(raw: str | None = None, **fields: Any):
    def stdin(config: dict[str, Any]) -> bytes:
        return _encode({**config, **fields}, raw)

    return stdin


def _hand_made(change: Callable[[dict[str, Any]], None]):
    """A conflist whose compiled network was edited and its digest made to match."""

    def stdin(config: dict[str, Any]) -> bytes:
        network = json.loads(json.dumps(config["netc"]["network"]))
        change(network)
        embedded = {**config["netc"], "network": network, "digest": ir_codec.digest(network)}
        return _encode({**config, "netc": embedded})

    return stdin


def _environment_cases() -> list[Case]:
    cases = []
    for variable in ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"):
        cases += [
            Case(variable, value, (BAD_ENVIRONMENT,), variables={variable: value})
            for value in [*TEXTS, *NOT_UTF8, "", "evil " * 20]
        ]
    cases += [
        Case(
            "CNI_CONTAINERID", "evil\n", (BAD_ENVIRONMENT,), variables={"CNI_CONTAINERID": "evil\n"}
        ),
        Case(
            "CNI_IFNAME",
            "evil0123456789ab",
            (BAD_ENVIRONMENT,),
            variables={"CNI_IFNAME": "evil0123456789ab"},
        ),
        Case(
            "CNI_NETNS",
            "/proc/self/ns/net",
            (BAD_ENVIRONMENT,),
            variables={"CNI_NETNS": "/proc/self/ns/net"},
        ),
    ]
    cases += [
        Case("CNI_PATH", value, (SUCCESS,), variables={"CNI_PATH": value})
        for value in [*TEXTS[:3], NOT_UTF8[0]]
    ]
    return cases


def _cni_args_cases() -> list[Case]:
    cases = []
    for key in ("K8S_POD_NAME", "K8S_POD_NAMESPACE", "K8S_POD_INFRA_CONTAINER_ID"):
        cases += [
            Case(
                f"CNI_ARGS {key}",
                value,
                (SUCCESS, BAD_ENVIRONMENT),
                variables={"CNI_ARGS": f"{key}=".encode() + _bytes(value)},
            )
            for value in [*TEXTS, *NOT_UTF8]
        ]
    cases += [
        Case("CNI_ARGS IP", value, (BAD_ENVIRONMENT,), variables={"CNI_ARGS": f"IP={value}"})
        for value in [*TEXTS, "10.77.0.5%evil", "10.77.0.5/24\nevil", "1e400"]
    ]
    cases += [
        Case("CNI_ARGS", value, (BAD_ENVIRONMENT,), variables={"CNI_ARGS": value})
        for value in ["evil", "K8S_POD_NAME=x;evil", ";;evil;"]
    ]
    return cases


def _stdin_cases() -> list[Case]:
    documents = {
        "empty": b"",
        "not JSON": b"{evil",
        "an array": b"[]",
        "a string": b'"evil"',
        "null": b"null",
        "1e400": b"1e400",
        "non-UTF-8": b'{"name": "\xffevil"}',
        "a raw NUL": b'{"name": "evil\x00"}',
        "a huge integer": f'{{"evil": {HUGE_INTEGER}}}'.encode(),
        f"{DEPTH} nested lists": b"[" * DEPTH + b"]" * DEPTH,
        f"{DEPTH} nested objects": b'{"evil":' * DEPTH + b"1" + b"}" * DEPTH,
    }
    cases = [
        Case("stdin", name, (DECODE,), stdin=lambda config, data=data: data)
        for name, data in documents.items()
    ]
    deep = "[" * DEPTH + "]" * DEPTH
    cases.append(
        Case(
            "stdin",
            f"runtimeConfig {DEPTH} deep",
            (DECODE,),
            stdin=_in_runtime_config({"portMappings": RAW}, deep),
        )
    )
    return cases


def _config_cases() -> list[Case]:
    cases = [
        Case("name", value, (BAD_CONFIG,), stdin=_with_fields(name=value))
        for value in [*TEXTS, "labnet\x00", "labnet\ud800", 5]
    ]
    cases += [
        Case("cniVersion", value, (INCOMPATIBLE,), stdin=_with_fields(cniVersion=value))
        for value in ["../evil", "1.0.0\nevil", "evil"]
    ]
    cases += [
        Case(
            "cniVersion",
            value,
            (INCOMPATIBLE, BAD_CONFIG),
            stdin=_with_fields(value, cniVersion=RAW),
        )
        for value in ["1.0", "Infinity", "[]", "true"]
    ]
    cases += [
        Case("netc", value, (BAD_CONFIG,), stdin=_with_fields(netc=RAW, raw=value))
        for value in ['"evil"', "[]", "null", '{"format": Infinity}']
    ]
    hand_made = {
        "network name": lambda n, v: n.update(name=v),
        "state_dir": lambda n, v: n.update(state_dir=v),
        "data_dir": lambda n, v: n["ipam"].update(data_dir=v),
        "bridge name": lambda n, v: n["bridge"].update(name=v),
        "subnet": lambda n, v: n["ipam"]["subnets"][0].update(cidr=v),
    }
    for target, change in hand_made.items():
        # an absolute, normal directory is the admin's choice; only the others are refused
        values = [v for v in TEXTS if not (target.endswith("_dir") and v == "/tmp/evil")]
        cases += [
            Case(
                f"hand-made {target}",
                value,
                (BAD_CONFIG,),
                stdin=_hand_made(lambda n, change=change, value=value: change(n, value)),
            )
            for value in values
        ]
    return cases


def _runtime_config_cases() -> list[Case]:
    cases = [
        Case("runtimeConfig", value, (BAD_CONFIG,), stdin=_in_runtime_config(RAW, value))  # type: ignore[arg-type]
        for value in ['"evil"', "[]", "5", "true"]
    ]
    for key in ("portMappings", "bandwidth", "ips"):
        cases += [
            Case(
                f"runtimeConfig {key}",
                value,
                (BAD_CONFIG,),
                stdin=_in_runtime_config({key: RAW}, value),
            )
            for value in ['"evil"', "5", "true", "[5]" if key != "portMappings" else "{}"]
        ]
    mapping = {"hostPort": 30080, "containerPort": 80, "protocol": "tcp"}
    for key in ("hostPort", "containerPort"):
        cases += [
            Case(
                f"portMappings {key}",
                value,
                (BAD_CONFIG,),
                stdin=_in_runtime_config({"portMappings": [{**mapping, key: RAW}]}, value),
            )
            for value in [*NUMBERS, "0", "65536", "null"]
        ]
        cases.append(
            Case(
                f"portMappings {key}",
                "a huge integer",
                (DECODE, BAD_CONFIG),
                stdin=_in_runtime_config({"portMappings": [{**mapping, key: RAW}]}, HUGE_INTEGER),
            )
        )
    for key, values in (
        ("protocol", [*TEXTS, "tcp\n", "TCP -j evil"]),
        (
            "hostIP",
            [
                *TEXTS,
                "fe80::1%lo",
                "fe80::1%lo -j evil",
                "198.18.0.1\n",
                "198.18.0.1 evil",
                "256.0.0.1",
                "/proc/1/ns/net",
            ],
        ),
    ):
        cases += [
            Case(
                f"portMappings {key}",
                value,
                (BAD_CONFIG,),
                stdin=_in_runtime_config({"portMappings": [{**mapping, key: value}]}),
            )
            for value in values
        ]
        cases.append(
            Case(
                f"portMappings {key}",
                5,
                (BAD_CONFIG,),
                stdin=_in_runtime_config({"portMappings": [{**mapping, key: 5}]}),
            )
        )
    for key in ("ingressRate", "egressRate", "ingressBurst", "egressBurst"):
        # a burst is bounded to 100 ms at the rate: one beyond 64 bits may be clipped
        cases += [
            Case(
                f"bandwidth {key}",
                value,
                (BAD_CONFIG, SUCCESS)
                if key.endswith("Burst") and value in BEYOND_U64
                else (BAD_CONFIG,),
                stdin=_in_runtime_config(
                    {"bandwidth": {"ingressRate": 10**7, "egressRate": 10**7, key: RAW}}, value
                ),
            )
            for value in NUMBERS
        ]
    cases += [
        Case("ips", value, (BAD_CONFIG,), stdin=_in_runtime_config({"ips": value}))
        for value in [[p] for p in TEXTS] + [["10.77.0.5%lo"], "10.77.0.5", [["x"]]]
    ]
    return cases


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


CASES = [
    *_environment_cases(),
    *_cni_args_cases(),
    *_stdin_cases(),
    *_config_cases(),
    *_runtime_config_cases(),
]


def _was_a_defect(case: Case) -> bool:
    """Cases that reproduced defects found earlier: always run, so the class stays closed.

    A hand-made bridge name with '/', '.', spaces or over 15 bytes; a
    runtimeConfig that is a list; a rate beyond tc's 64-bit fields.
    """
    return (
        (case.target == "hand-made bridge name")
        or (case.target == "runtimeConfig" and case.payload == "[]")
        or (case.target.endswith("Rate") and case.payload in BEYOND_U64)
    )


def _selected() -> list[Any]:
    """Every case in the long mode; else a spread of each target's cases and the known ones."""
    by_target: dict[str, list[Case]] = {}
    for case in CASES:
        by_target.setdefault(case.target, []).append(case)
    chosen = [
        case
        for group in by_target.values()
        for case in group
        if case in calls.sample(group, 3) or _was_a_defect(case)
    ]
    return [pytest.param(case, id=case.id) for case in chosen]


def _traces(lab: Lab) -> list[str]:
    """Files or directories named from a payload, anywhere a path payload could reach."""
    roots = [
        (lab.tmp, 8),
        (Path("/tmp"), 2),
        (Path("/run"), 2),
        (Path("/"), 1),
        (Path("/etc"), 1),
        (Path("/var/lib"), 2),
    ]
    return sorted({path for root, depth in roots for path in _traces_in(root, depth)})


def _traces_in(root: Path, depth: int) -> list[str]:
    found = []
    for directory, names, files in os.walk(root):
        if len(Path(directory).relative_to(root).parts) >= depth:
            names.clear()
        found += [os.path.join(directory, n) for n in [*names, *files] if "evil" in n]
    return found


def _outside(lab: Lab, before: set[Path]) -> list[str]:
    """Files in the lab that are new and not below its state or data directory."""
    allowed = (lab.tmp / "state", lab.tmp / "ipam")
    return [
        str(p)
        for p in set(lab.tmp.rglob("*")) - before
        if not any(p.is_relative_to(root) for root in allowed)
    ]


@pytest.mark.parametrize("case", _selected())
def test_hostile_input_is_refused_with_its_code_and_leaves_nothing(lab, case):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    config = calls.request(conflist, {"portMappings": calls.port_mappings(1)})
    before, traces = set(lab.tmp.rglob("*")), set(_traces(lab))
    try:
        answer = calls.call(
            lab, case.stdin(config), calls.environment(case.command, pod, case.variables)
        )
        if answer.status == 0:
            assert SUCCESS in case.codes, f"accepted: {answer.stdout[:300]!r}"
            _delete(lab, config, pod, case)
        else:
            error = answer.error()
            assert error["code"] in case.codes, error
        assert not [line for line in rules(lab) if "evil" in line]
        assert not _outside(lab, before)
        assert not set(_traces(lab)) - traces
        assert_clean(lab, [pod])
    finally:
        _remove_new_traces(traces)


def _remove_new_traces(traces: set[str]) -> None:
    """What a failing case wrote into /tmp goes, so the next cases are not blamed for it."""
    for path in sorted(set(_traces_in(Path("/tmp"), 2)) - traces):
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)


def _delete(lab: Lab, config: dict[str, Any], pod: Pod, case: Case) -> None:
    """The DEL of an accepted case: the same stdin and environment."""
    answer = calls.call(lab, case.stdin(config), calls.environment("DEL", pod, case.variables))
    assert answer.status == 0, answer.stdout


def test_the_nodes_own_namespace_is_never_taken_for_a_pod(lab):
    """CNI_NETNS naming the machine's namespace (/proc/1/ns/net): refused before any use.

    Asked with CHECK, which only reads: were the refusal ever lost, the test
    would look at the machine's namespace, never change it.
    """
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    lab.add(conflist, pod)
    answer = calls.call(
        lab,
        calls.request(conflist),
        calls.environment("CHECK", pod, {"CNI_NETNS": "/proc/1/ns/net"}),
    )
    assert answer.error()["code"] == BAD_ENVIRONMENT
    lab.delete(conflist, pod)
    assert_clean(lab, [pod])
