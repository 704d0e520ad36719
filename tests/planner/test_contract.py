"""The plan's parameters are a typed contract: mypy, not a root test, finds a misspelt field.

A handler is typed for its kind's parameters (`Handler[LinkVethParams]`,
`Operation[LinkVethParams]`), so reading a field that does not exist,
building parameters with a wrong keyword, or declaring another kind's
parameters is a type error.  The snippet below is checked the way `make
lint` checks netc (strict), once as written and once with each mistake.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

from compiler.planner.context import PodContext, PortMapping
from compiler.planner.ops import Operation, Phase, fill, placeholders
from compiler.planner.params import AddressParams, LinkVethParams
from compiler.planner.plan import plan
from tests.support import compile_example

ROOT = Path(__file__).resolve().parents[2]

HANDLER = """
from compiler.planner.ops import Observation, Operation, State
from compiler.planner.params import LinkBridgeParams, LinkVethParams
from runtime.ops.base import Handler, Run


class Veth(Handler[LinkVethParams]):
    params = LinkVethParams

    def ensure(self, op: Operation[LinkVethParams], run: Run) -> bool:
        return op.params.peer == "eth0"

    def remove(self, op: Operation[LinkVethParams], run: Run) -> None:
        return None

    def observe(self, op: Operation[LinkVethParams], run: Run) -> Observation:
        return Observation(State.IN_PLACE)


PLANNED = LinkVethParams(name="veth0", peer="eth0", netns=None, mtu=None)
HANDLER = Veth()
"""

MISTAKES = {
    "a misspelt field read by a handler": (
        'op.params.peer == "eth0"',
        'op.params.pear == "eth0"',
        '"LinkVethParams" has no attribute "pear"',
    ),
    "a misspelt field given by the planner": (
        'peer="eth0", netns',
        'pear="eth0", netns',
        'Unexpected keyword argument "pear" for "LinkVethParams"',
    ),
    "a handler declaring another kind's parameters": (
        "    params = LinkVethParams",
        "    params = LinkBridgeParams",
        'expression has type "type[LinkBridgeParams]", base class "Handler" defined the type '
        'as "type[LinkVethParams]"',
    ),
    "a handler without one of the three methods": (
        "    def remove(",
        "    def unused(",
        'Cannot instantiate abstract class "Veth" with abstract attribute "remove"',
    ),
}


def _mypy(tmp_path: Path, source: str) -> str:
    # One file per text: mypy's cache knows a file by its path, size and time.
    snippet = tmp_path / f"snippet_{len(list(tmp_path.glob('snippet_*')))}.py"
    snippet.write_text(source)
    stdout, stderr, _ = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--follow-imports",
            "silent",
            str(snippet),
        ]
    )
    return stdout + stderr


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module: netc's own modules are analysed once."""
    return tmp_path_factory.mktemp("mypy")


def test_the_snippet_as_written_type_checks(cache):
    assert "Success: no issues found in 1 source file" in _mypy(cache, HANDLER)


@pytest.mark.parametrize("mistake", MISTAKES)
def test_mypy_refuses_a_mistake_in_the_contract(cache, mistake):
    written, mistaken, error = MISTAKES[mistake]
    assert written in HANDLER
    assert error in _mypy(cache, HANDLER.replace(written, mistaken))


def test_the_json_form_is_the_fields_by_name_in_order():
    veth = LinkVethParams("veth0", "eth0", None, 1450)
    assert veth.to_json() == {"name": "veth0", "peer": "eth0", "netns": None, "mtu": 1450}
    assert list(veth.to_json()) == ["name", "peer", "netns", "mtu"]


def test_resolving_fills_every_placeholder_and_keeps_what_holds_none_as_it_is():
    bindings = {
        "ipv4.ip": "10.77.0.5",
        "ipv4.cidr": "10.77.0.5/24",
        "ipv4.gateway": "10.77.0.1",
        "ipv6.ip": "fd00::5",
        "ipv6.cidr": "fd00::5/64",
        "ipv6.gateway": "fd00::1",
    }
    (network,) = compile_example("pods")[0].networks
    pod = PodContext("c1", port_mappings=(PortMapping(8080, 80), PortMapping(30053, 53, "udp")))
    operations = plan(network, pod, "ADD").operations
    for op in operations:
        resolved = op.resolved(bindings)
        assert type(resolved.params) is type(op.params)
        assert not placeholders(resolved.params) and not placeholders(resolved.summary), op
        if not placeholders(op.params) and not placeholders(op.summary):
            assert resolved is op
    address = Operation("eth0", "", AddressParams("eth0", "{ipv4.cidr}"), Phase.SANDBOX)
    assert address.resolved(bindings).params == AddressParams("eth0", "10.77.0.5/24")
    assert fill(("{ipv4.ip}", ["{ipv6.ip}"]), bindings) == ("10.77.0.5", ["fd00::5"])
