"""Properties of plans over many generated pods (hypothesis).

* DEL undoes exactly the attachment-owned operations of ADD, in reverse order,
  and never touches node-scoped objects;
* every owned object ADD leaves behind is either removed by DEL or goes with
  one that is (its `undone_by`);
* owned names never collide between containers and always fit kernel limits;
* placeholders are only used after the reservation that binds them;
* plans are deterministic.
"""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.datatypes import replace
from compiler.identifiers import LINK_NAME_MAX
from compiler.planner.context import BandwidthRequest, PodContext, PortMapping
from compiler.planner.iptables import CHAIN_NAME_MAX, COMMENT_MAX
from compiler.planner.names import AttachmentNames
from compiler.planner.ops import PLAN_FORMAT, Action, Kind, Scope, has_params, placeholders
from compiler.planner.params import IpamAddressParams
from compiler.planner.plan import plan
from compiler.planner.render import render_json
from tests.support import compile_example

(NETWORK,) = compile_example("pods")[0].networks
NETWORK = replace(
    NETWORK,
    hostport=replace(NETWORK.hostport, allow=(), deny=()),
    bandwidth=replace(NETWORK.bandwidth, max=None, namespaces=()),
)

container_ids = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,80}", fullmatch=True)
ifnames = st.from_regex(r"[a-z][a-z0-9]{0,14}", fullmatch=True)
network_names = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,60}", fullmatch=True)
mappings = st.lists(
    st.builds(
        PortMapping, st.integers(1, 65535), st.integers(1, 65535), st.sampled_from(["tcp", "udp"])
    ),
    max_size=4,
    unique_by=lambda m: (m.host_port, m.protocol),
)
rates = st.one_of(st.none(), st.integers(1000, 10**10))
bandwidths = st.builds(BandwidthRequest, rates, st.none(), rates, st.none())
pods = st.builds(
    PodContext,
    container_ids,
    ifnames,
    st.just("/run/netns/p"),
    st.sampled_from([None, "default", "batch"]),
    st.just("pod"),
    mappings.map(tuple),
    bandwidths,
)


@settings(max_examples=200, deadline=None)
@given(pods)
def test_del_reverts_the_owned_operations_of_add_in_reverse_host_port_nat_first(pod):
    adding = plan(NETWORK, pod, "ADD").operations
    deleting = plan(NETWORK, pod, "DEL").operations
    assert all(op.action == Action.REMOVE and op.scope != Scope.NODE for op in deleting)
    removable = [
        (op.kind, op.target)
        for op in reversed(adding)
        if op.scope != Scope.NODE and op.undone_by is None
    ]
    first = [
        entry
        for kind in (Kind.IPTABLES_ATTACHMENT, Kind.CONNTRACK_FLUSH, Kind.HOSTPORT_CLAIM)
        for entry in removable
        if entry[0] == kind
    ]
    assert [(op.kind, op.target) for op in deleting] == first + [
        entry for entry in removable if entry not in first
    ]


@settings(max_examples=200, deadline=None)
@given(pods)
def test_every_owned_object_goes_when_del_runs(pod):
    adding = plan(NETWORK, pod, "ADD").operations
    removed = {op.target for op in plan(NETWORK, pod, "DEL").operations} | {"sandbox"}
    for op in adding:
        if op.scope != Scope.NODE:
            assert op.target in removed or op.undone_by in removed, op


@settings(max_examples=300, deadline=None)
@given(network_names, container_ids, container_ids, ifnames)
def test_owned_names_fit_the_kernel_and_never_collide(network, first, second, ifname):
    a, b = AttachmentNames(network, first, ifname), AttachmentNames(network, second, ifname)
    for names in (a, b):
        assert len(names.host_veth.encode()) <= LINK_NAME_MAX
        assert len(names.ifb.encode()) <= LINK_NAME_MAX
        assert len(names.dnat_chain) <= CHAIN_NAME_MAX
        assert len(names.comment) <= COMMENT_MAX
    if first != second:
        owned_a = {a.host_veth, a.ifb, a.dnat_chain, a.key}
        assert owned_a.isdisjoint({b.host_veth, b.ifb, b.dnat_chain, b.key})


@settings(max_examples=100, deadline=None)
@given(pods)
def test_placeholders_are_bound_before_they_are_used(pod):
    bound: set[str] = set()
    for op in plan(NETWORK, pod, "ADD").operations:
        assert {name.split(".")[0] for name in placeholders(op.params)} <= bound, op
        if has_params(op, IpamAddressParams):
            bound.add(op.params.binds)


@settings(max_examples=50, deadline=None)
@given(pods, st.sampled_from(["ADD", "DEL", "CHECK"]))
def test_plans_are_deterministic(pod, command):
    first = render_json(plan(NETWORK, pod, command))
    assert first == render_json(plan(NETWORK, pod, command))
    assert json.loads(first)["format_version"] == PLAN_FORMAT


def test_del_with_unknown_context_removes_whatever_could_exist():
    pod = PodContext("c1", port_mappings=None, bandwidth=None)
    kinds = [op.kind for op in plan(NETWORK, pod, "DEL").operations]
    assert {"hostport.claim", "iptables.attachment", "link.ifb", "link.veth"} <= set(kinds)
