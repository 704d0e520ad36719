"""The traffic checks run on both twin labs, and the table of verdicts they give.

Every network of an example gets two pods: `web` (serving TCP and UDP on
port 80, with host ports and a bandwidth request, measured with iperf3, when
the network supports them) and `peer` (nothing).  The scenario is derived from the IR, so
each lab gets the same pods, ports and requests; ports are picked among those
the network's policy allows, since the reference does not enforce it.

A verdict names who answered and which source address it saw, by role
("pods/web saw pods gateway"), never by raw address, so the two labs' tables
compare equal exactly when the kernels behave the same.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from compiler.ir import Network
from compiler.planner.context import BandwidthRequest, PodContext, PortMapping
from compiler.planner.policy import PolicyError, check_mappings
from tests.differential.twins import TwinLab, run_both
from tests.kernel.lab import CLIENT_IP, NODE_IP

SERVICE_PORT = 80
CLIENT_PORT = 9000
RATES = {"ingress": 12_000_000, "egress": 8_000_000}
"""Different per direction, so a swapped direction shows; low enough for iperf3 to be exact."""
BURST_MS = 50
"""Explicit bursts within netc's 100 ms bound, so both targets install the same bucket."""
TOLERANCE = 0.10
PROBE_THREADS = 8
NO_ANSWER = "no answer"


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the table: its name and how to get its verdict on a lab."""

    name: str
    probe: Callable[[TwinLab], str]


@dataclass(frozen=True, slots=True)
class Scenario:
    """What each lab attaches: per network, the web pod's ports and bandwidth request."""

    networks: tuple[Network, ...]
    ports: dict[str, int]
    requests: dict[str, BandwidthRequest]

    def mappings(self, network: str) -> tuple[PortMapping, ...]:
        """The web pod's host port, mapped for TCP and UDP to its service port."""
        port = self.ports.get(network)
        if port is None:
            return ()
        return tuple(PortMapping(port, SERVICE_PORT, p) for p in ("tcp", "udp"))


def scenario(networks: tuple[Network, ...]) -> Scenario:
    """Host ports the policies allow (distinct across networks) and explicit-burst requests."""
    ports: dict[str, int] = {}
    for network in networks:
        if network.hostport is not None:
            ports[network.name] = allowed_port(network, set(ports.values()))
    requests = {n.name: explicit_request() for n in networks if n.bandwidth is not None}
    return Scenario(networks, ports, requests)


def explicit_request() -> BandwidthRequest:
    """The web pod's bandwidth request, with bursts of `BURST_MS` of its rate."""
    ingress, egress = RATES["ingress"], RATES["egress"]
    return BandwidthRequest(ingress, ingress * BURST_MS // 1000, egress, egress * BURST_MS // 1000)


def allowed_port(network: Network, taken: set[int]) -> int:
    """The first candidate host port the network's policy allows for TCP and UDP."""
    assert network.hostport is not None
    candidates = [r.first for r in network.hostport.allow] + list(range(8080, 8100))
    for port in candidates:
        if port not in taken and _allowed(network, port):
            return port
    raise AssertionError(f"no allowed host port in {candidates}")


def _allowed(network: Network, port: int) -> bool:
    pod = PodContext(
        "probe", port_mappings=tuple(PortMapping(port, SERVICE_PORT, p) for p in ("tcp", "udp"))
    )
    try:
        check_mappings(network, pod)
    except PolicyError:
        return False
    return True


def populate(lab: TwinLab, plan: Scenario) -> None:
    """Attach every pod of the scenario and start the servers the checks talk to."""
    lab.build(plan.networks)
    lab.serve(lab.client, "tcp", CLIENT_PORT, "client")
    for network in plan.networks:
        name = network.name
        lab.attach(name, "web", mappings=plan.mappings(name), request=plan.requests.get(name))
        lab.attach(name, "peer")
        web = lab.pods[f"{name}/web"].name
        for protocol in ("tcp", "udp"):
            lab.serve(web, protocol, SERVICE_PORT, f"{name}/web")
    lab.settle()


def roles(lab: TwinLab, plan: Scenario) -> dict[str, str]:
    """Address -> role, for the addresses a verdict can name."""
    named = {NODE_IP: "node", CLIENT_IP: "client", "127.0.0.1": "localhost"}
    for network in plan.networks:
        assert network.ipam is not None
        named.update((str(s.gateway), f"{network.name} gateway") for s in network.ipam.subnets)
    for key, result in lab.results.items():
        named.update((ip["address"].split("/")[0], key) for ip in result["ips"])
    return named


def checks(plan: Scenario) -> list[Check]:
    """Every row of the table, in a stable order."""
    rows: list[Check] = []
    for network in plan.networks:
        rows += _pod_checks(network)
        if network.name in plan.ports:
            rows += _hostport_checks(network.name, plan.ports[network.name])
    for source in plan.networks:
        rows += [
            _ask(
                f"{source.name}/peer",
                "tcp",
                _pod(f"{other.name}/web"),
                SERVICE_PORT,
                f"{other.name}/web",
            )
            for other in plan.networks
            if other is not source
        ]
    names = [row.name for row in rows]
    assert len(set(names)) == len(names), f"checks named twice: {names}"
    return rows


def _pod_checks(network: Network) -> list[Check]:
    assert network.bridge is not None and network.ipam is not None
    web, peer = f"{network.name}/web", f"{network.name}/peer"
    rows = []
    for family in network.ipam.families():
        rows += [
            _ping(peer, _pod(web, family), f"{web} v{family}"),
            _ping(web, _pod(peer, family), f"{peer} v{family}"),
        ]
        if network.bridge.gateway:
            gateway = str(network.ipam.subnets_of(family)[0].gateway)
            rows.append(_ping(web, lambda _lab, g=gateway: g, f"{network.name} gateway v{family}"))
    rows += [
        _ask(peer, "tcp", _pod(web), SERVICE_PORT, web),
        _ask(peer, "tcp", lambda _lab: CLIENT_IP, CLIENT_PORT, "client"),
    ]
    return rows


def _hostport_checks(network: str, port: int) -> list[Check]:
    web, peer = f"{network}/web", f"{network}/peer"
    rows = []
    for protocol in ("tcp", "udp"):
        for source, target in (
            ("client", NODE_IP),
            ("node", "127.0.0.1"),
            ("node", NODE_IP),
            (web, NODE_IP),
            (peer, NODE_IP),
        ):
            rows.append(
                _ask(
                    source,
                    protocol,
                    lambda _lab, t=target: t,
                    port,
                    "localhost" if target == "127.0.0.1" else "node",
                )
            )
    return rows


def _pod(key: str, family: int = 4) -> Callable[[TwinLab], str]:
    return lambda lab: lab.address(key, family)


def _where(lab: TwinLab, source: str) -> str:
    """The namespace a probe runs in: a lab role or a pod key."""
    return {"client": lab.client, "node": lab.node}.get(source) or lab.pods[source].name


def _ping(source: str, target: Callable[[TwinLab], str], shown: str) -> Check:
    def probe(lab: TwinLab) -> str:
        return "reply" if lab.ping(_where(lab, source), target(lab)) else "no reply"

    return Check(f"{source} -> {shown} icmp", probe)


def _ask(
    source: str, protocol: str, target: Callable[[TwinLab], str], port: int, shown: str
) -> Check:
    def probe(lab: TwinLab) -> str:
        answer = lab.ask(_where(lab, source), protocol, target(lab), port)
        if answer is None:
            return NO_ANSWER
        server, _, seen = answer.partition(" ")
        return f"{server} saw {lab.roles.get(seen, seen)}"

    return Check(f"{source} -> {shown}:{port}/{protocol}", probe)


def table(lab: TwinLab, plan: Scenario) -> dict[str, str]:
    """Every check's verdict on one lab (probes run concurrently; each is independent)."""
    lab.roles = roles(lab, plan)
    rows = checks(plan)
    with ThreadPoolExecutor(max_workers=PROBE_THREADS) as pool:
        verdicts = list(pool.map(lambda c: c.probe(lab), rows))
    return dict(zip((c.name for c in rows), verdicts, strict=True))


def rates(lab: TwinLab, plan: Scenario) -> dict[str, float]:
    """iperf3 bit/s per shaped web pod and direction (ingress: node -> pod, egress back).

    Pods are measured at once; one pod's directions one after the other, since
    the ACKs of a transfer to the pod would share the bucket of its egress.
    """

    def both_directions(name: str) -> dict[str, float]:
        key = f"{name}/web"
        return {f"{key} {d}": _measure(lab, key, d) for d in RATES}

    measured: dict[str, float] = {}
    for found in run_both(both_directions, plan.requests):
        measured.update(found)
    return measured


def _measure(lab: TwinLab, key: str, direction: str) -> float:
    """A rate, measured again when off: a busy machine can stall TCP for seconds, while a
    wrong limit is off twice."""
    rate = lab.iperf(key, direction)
    return rate if _off(rate, RATES[direction]) is None else lab.iperf(key, direction)


def _off(rate: float, limit: int) -> str | None:
    """How far a rate is from its limit, None when within the tolerance."""
    off = rate / limit - 1
    return None if abs(off) <= TOLERANCE else f"off by {off:+.0%}"


def rate_verdicts(measured: dict[str, float]) -> dict[str, str]:
    """Each measured rate against its limit: within tolerance, or how far off."""
    verdicts = {}
    for key, rate in measured.items():
        limit = RATES[key.rsplit(" ", 1)[1]]
        verdicts[f"{key} {limit // 10**6}M"] = _off(rate, limit) or "within 10%"
    return verdicts


def side_by_side(tables: dict[str, dict[str, str]]) -> str:
    """The tables as text columns, differing rows marked with `!`."""
    names = list(tables)
    rows = list(dict.fromkeys(k for t in tables.values() for k in t))
    width = max(map(len, rows), default=0)
    cell = max((len(v) for t in tables.values() for v in t.values()), default=0)
    lines = [f"  {'check':{width}}  " + "  ".join(f"{n:{cell}}" for n in names)]
    for row in rows:
        cells = [tables[n].get(row, "-") for n in names]
        mark = "!" if len(set(cells)) > 1 else " "
        lines.append(f"{mark} {row:{width}}  " + "  ".join(f"{c:{cell}}" for c in cells))
    return "\n".join(line.rstrip() for line in lines)
