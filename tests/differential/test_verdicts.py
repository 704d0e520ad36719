"""Issue 6: the same traffic checks give the same verdicts on the stock plugins and netc.

For each bridge example, both conflists are built from one compilation and
run in twin labs with the same pods, host ports and bandwidth requests.  The
verdict tables (one row per check) must be equal; the assertion message shows
both tables side by side with differing rows marked.  Independently of the
comparison, the verdicts that follow from the network itself (masquerade,
hairpin, hostPort from outside) must hold, so two equally broken labs fail.
"""

import pytest

from tests.differential import checks
from tests.differential.twins import BRIDGE_EXAMPLES, compiled, run_both
from tests.kernel.lab import NODE_IP


def _expected(plan: checks.Scenario) -> dict[str, str]:
    """Verdicts the networks' own settings dictate."""
    expected = {}
    for network in plan.networks:
        assert network.bridge is not None
        name = network.name
        expected[f"{name}/peer -> client:{checks.CLIENT_PORT}/tcp"] = (
            "client saw node" if network.bridge.masquerade else checks.NO_ANSWER)
        port = plan.ports.get(name)
        if port is None:
            continue
        web = f"{name}/web"
        for protocol in ("tcp", "udp"):
            expected[f"client -> node:{port}/{protocol}"] = f"{web} saw client"
            expected[f"{web} -> node:{port}/{protocol}"] = (
                f"{web} saw {name} gateway" if network.bridge.hairpin else checks.NO_ANSWER)
    for key, verdict in checks.rate_verdicts({f"{n}/web {d}": checks.RATES[d] for n in
                                              plan.requests for d in checks.RATES}).items():
        expected[key] = verdict
    return expected


@pytest.mark.parametrize("example", BRIDGE_EXAMPLES)
def test_both_targets_give_the_same_verdicts(twins, example):
    plan = checks.scenario(compiled(example))
    labs = list(twins.values())
    run_both(lambda lab: checks.populate(lab, plan), labs)
    tables = dict(zip(twins, run_both(lambda lab: checks.table(lab, plan), labs), strict=True))
    measured = dict(zip(twins, run_both(lambda lab: checks.rates(lab, plan), labs), strict=True))
    for target, rates in measured.items():
        tables[target].update(checks.rate_verdicts(rates))
    print(f"{example} (node {NODE_IP}):\n{checks.side_by_side(tables)}\nrates: {measured}")
    shown = checks.side_by_side(tables)
    assert tables["netc"] == tables["reference"], shown
    expected = _expected(plan)
    assert {k: tables["reference"].get(k) for k in expected} == expected, shown
