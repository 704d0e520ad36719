"""The same traffic checks give the same verdicts on the stock plugins and netc.

For each bridge example, both conflists are built from one compilation and
run in twin labs with the same pods, host ports and bandwidth requests.  The
verdict tables (one row per check) must be equal; the assertion message shows
both tables side by side with differing rows marked.  Independently of the
comparison, the verdicts that follow from the network itself (masquerade,
hairpin, hostPort from outside) must hold, so two equally broken labs fail.
"""

import pytest

from tests.differential import checks
from tests.differential.twins import BRIDGE_EXAMPLES, compiled, each


def _expected(plan: checks.Scenario) -> dict[str, str]:
    """Verdicts the networks' own settings dictate."""
    expected = {}
    for network in plan.networks:
        assert network.bridge is not None
        name = network.name
        expected[f"{name}/peer -> client:{checks.CLIENT_PORT}/tcp"] = (
            "client saw node" if network.bridge.masquerade else checks.NO_ANSWER
        )
        port = plan.ports.get(name)
        if port is None:
            continue
        web = f"{name}/web"
        for protocol in ("tcp", "udp"):
            expected[f"client -> node:{port}/{protocol}"] = f"{web} saw client"
            expected[f"{web} -> node:{port}/{protocol}"] = (
                f"{web} saw {name} gateway" if network.bridge.hairpin else checks.NO_ANSWER
            )
    for key, verdict in checks.rate_verdicts(
        {f"{n}/web {d}": checks.RATES[d] for n in plan.requests for d in checks.RATES}
    ).items():
        expected[key] = verdict
    return expected


@pytest.mark.parametrize("example", BRIDGE_EXAMPLES)
def test_both_targets_give_the_same_verdicts(twins, example):
    plan = checks.scenario(compiled(example))
    each(twins, lambda lab: checks.populate(lab, plan))
    tables = each(twins, lambda lab: checks.table(lab, plan))
    measured = each(twins, lambda lab: checks.rates(lab, plan))
    for target, rates in measured.items():
        tables[target].update(checks.rate_verdicts(rates))
    shown = checks.side_by_side(tables)
    print(f"{example}:\n{shown}")
    for target, rates in measured.items():
        print(f"{target} (Mbit/s): " + ", ".join(f"{k} {r / 1e6:.2f}" for k, r in rates.items()))
    assert tables["netc"] == tables["reference"], shown
    expected = _expected(plan)
    assert {k: tables["reference"].get(k) for k in expected} == expected, shown
