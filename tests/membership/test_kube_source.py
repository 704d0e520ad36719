"""The kubernetes source against the tests' API server (tests/membership/apiserver.py): Nodes
joining and leaving, the annotation each agent publishes, 410 and bookmarks, an outage, refused
credentials, Nodes whose podCIDRs do not fit.  No kernel work: what each node would route comes
from the members its source lists (tests/membership/test_kube_agents.py routes packets)."""

from __future__ import annotations

import ipaddress
import time

import pytest

from compiler.ir import Cluster, Membership, Routing
from compiler.kubernetes import NODE_VERBS
from runtime.kubeapi import Kube, from_kubeconfig
from runtime.membership.kubernetes import KubernetesSource, members_now
from runtime.netns import node_namespace
from tests.membership.agents import until
from tests.membership.apiserver import AGENT_TOKEN
from tests.membership.nodes import node_object

ANNOTATION = "netc.dev/underlay-addresses"
CLUSTER = Cluster(
    "sim",
    (ipaddress.ip_network("10.244.0.0/16"),),
    (24,),
    (),
    Routing("vxlan"),
    membership=Membership("kubernetes"),
)


def _register(api, number: int, pod_cidr: str | None = "auto", **extra) -> str:
    """A Node as the kubelet registers it and kube-controller-manager gives it a podCIDR."""
    name = f"node-{number}"
    cidrs = [f"10.244.{number}.0/24"] if pod_cidr == "auto" else ([pod_cidr] if pod_cidr else None)
    api.add_node(node_object(name, cidrs, [f"198.18.10.{10 + number}"], **extra))
    return name


class Agents:
    """A source per node, each with the address it is given, talking from the client."""

    def __init__(self, api, tmp_path) -> None:
        self.api = api
        self.kubeconfig = str(api.kubeconfig(tmp_path / "kubeconfig"))
        self.sources: dict[str, KubernetesSource] = {}
        self.pods: set[str] = set()

    def start(
        self, *names: str, token: str = AGENT_TOKEN, given: bool = True, watch_seconds: int = 300
    ) -> list[KubernetesSource]:
        config = from_kubeconfig(
            str(self.api.kubeconfig(self.api.sim.tmp / f"kubeconfig-{token}", token))
        )
        started = []
        for name in names:
            number = int(name.rsplit("-", 1)[1])
            addresses = (ipaddress.ip_interface(f"198.18.10.{10 + number}/24"),) if given else ()
            source = KubernetesSource(
                CLUSTER,
                name,
                addresses,
                lambda name=name: name in self.pods,
                kube=Kube(config),
                watch_seconds=watch_seconds,
            )
            with node_namespace(self.api.sim.client):
                source.start()
            self.sources[name] = source
            started.append(source)
        return started

    def stop_all(self) -> None:
        for source in self.sources.values():
            source.stop()

    def seen_by(self, name: str) -> set[str]:
        members = self.sources[name].view().members
        return {m.name for m in members.members} if members else set()

    def everyone_sees(self, names: set[str]) -> bool:
        return all(self.seen_by(n) == names for n in self.sources)


@pytest.fixture
def agents(api, tmp_path):
    found = Agents(api, tmp_path)
    yield found
    found.stop_all()


def test_three_nodes_join_from_their_nodes_and_publish_their_addresses(api, agents):
    names = {_register(api, n) for n in (1, 2, 3)}
    agents.start(*sorted(names))
    assert until(lambda: agents.everyone_sees(names))
    member = agents.sources["node-1"].view().members.get("node-2")
    assert [str(s) for s in member.subnets] == ["10.244.2.0/24"]
    assert [str(a) for a in member.addresses] == ["198.18.10.12/24"]
    assert api.node("node-3")["metadata"]["annotations"] == {ANNOTATION: "198.18.10.13/24"}
    assert all(s.view().condition == "" for s in agents.sources.values())
    with node_namespace(api.sim.client):
        listed = members_now(CLUSTER, agents.kubeconfig)
    assert {m.name for m in listed.members} == names


def test_without_node_address_the_internal_ip_gets_the_prefix_of_its_interface(api, agents):
    """The client namespace holds 198.18.10.100/24: the agent finds it there."""
    api.add_node(node_object("node-100", ["10.244.100.0/24"], ["198.18.10.100"]))
    (source,) = agents.start("node-100", given=False)
    assert until(lambda: source.view().me is not None)
    assert [str(a) for a in source.view().me.addresses] == ["198.18.10.100/24"]
    assert api.node("node-100")["metadata"]["annotations"][ANNOTATION] == "198.18.10.100/24"


def test_a_node_added_appears_everywhere_and_a_node_deleted_vanishes_everywhere(api, agents):
    agents.start(_register(api, 1), _register(api, 2))
    assert until(lambda: agents.everyone_sees({"node-1", "node-2"}))
    agents.start(_register(api, 3))
    assert until(lambda: agents.everyone_sees({"node-1", "node-2", "node-3"}))
    agents.sources.pop("node-3").stop()
    api.delete_node("node-3")
    assert until(lambda: agents.everyone_sees({"node-1", "node-2"}))


def test_a_node_whose_agent_never_ran_is_no_member_until_it_publishes(api, agents):
    agents.start(_register(api, 1))
    _register(api, 2)
    assert until(lambda: agents.seen_by("node-1") == {"node-1"})
    time.sleep(0.5)
    assert agents.seen_by("node-1") == {"node-1"}
    agents.start("node-2")
    assert until(lambda: agents.everyone_sees({"node-1", "node-2"}))


def test_a_compacted_version_lists_again_and_finds_the_node_deleted_meanwhile(api, agents):
    agents.start(_register(api, 1), _register(api, 2), _register(api, 3))
    assert until(lambda: agents.everyone_sees({"node-1", "node-2", "node-3"}))
    agents.sources.pop("node-3").stop()
    lists = api.count("list")
    api.end_watches(lambda: api.store.delete("node-3"))  # no watch sees the DELETE
    assert until(lambda: agents.everyone_sees({"node-1", "node-2"}))
    assert api.count("list") >= lists + 2, "each source listed again after its 410"


def test_bookmarks_keep_the_version_current_so_a_new_watch_needs_no_listing(api, agents):
    agents.start(_register(api, 1), _register(api, 2))
    assert until(lambda: agents.everyone_sees({"node-1", "node-2"}))
    for _ in range(5):
        api.store.tick()  # other objects change: no Node event carries the version
    version = api.store.version
    assert until(lambda: all(s.view().members.revision == version for s in agents.sources.values()))
    lists, watches = api.count("list"), api.count("watch")
    api.end_watches()  # compacted up to the bookmarks' version
    assert until(lambda: api.count("watch") >= watches + 2)
    _register(api, 3)
    agents.start("node-3")
    assert until(lambda: agents.everyone_sees({"node-1", "node-2", "node-3"}))
    assert api.count("list") == lists + 1, "only node-3's first listing"


def test_watches_the_server_ends_are_taken_up_from_their_version(api, agents):
    agents.start(_register(api, 1), watch_seconds=1)
    assert until(lambda: api.count("watch") >= 3, 10)
    assert api.count("list") == 1
    agents.start(_register(api, 2))
    assert until(lambda: agents.everyone_sees({"node-1", "node-2"}))


def test_an_outage_removes_nobody_and_the_listing_after_it_finds_what_changed(api, agents):
    agents.start(_register(api, 1), _register(api, 2), _register(api, 3))
    everyone = {"node-1", "node-2", "node-3"}
    assert until(lambda: agents.everyone_sees(everyone))
    api.stop()
    assert until(
        lambda: all(
            "the Kubernetes API is unavailable" in s.view().condition
            for s in agents.sources.values()
        )
    )
    agents.sources.pop("node-3").stop()
    api.store.delete("node-3")  # while the API was away from the agents
    time.sleep(1)
    assert agents.everyone_sees(everyone), "nothing is removed while the API is away"
    api.start()
    assert until(lambda: agents.everyone_sees({"node-1", "node-2"}), 30)
    assert all(s.view().condition == "" for s in agents.sources.values())


def test_a_bad_token_and_a_role_without_patch_are_conditions_with_the_apis_reason(api, agents):
    (stranger,) = agents.start(_register(api, 1), token="not-a-token")
    assert until(lambda: "HTTP 401: Unauthorized" in stranger.view().condition)
    assert stranger.view().me is None
    agents.sources.pop("node-1").stop()
    api.roles[AGENT_TOKEN] = set(NODE_VERBS) - {"patch"}
    (source,) = agents.start("node-1")
    assert until(lambda: 'cannot patch resource "nodes"' in source.view().condition)
    assert "HTTP 403" in source.view().condition and source.view().me is None


def test_a_node_without_podcidrs_says_what_to_set_and_joins_once_it_has_them(api, agents):
    (source,) = agents.start(_register(api, 1, pod_cidr=None))
    assert until(lambda: "it has no podCIDR" in source.view().condition)
    assert (
        "--allocate-node-cidrs --cluster-cidr=10.244.0.0/16 --node-cidr-mask-size=24"
        in source.view().condition
    )
    assert source.view().me is None
    node = api.node("node-1")
    node["spec"] = {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
    api.store.put(node, "MODIFIED")  # kube-controller-manager assigns it
    assert until(lambda: source.view().me is not None, 10)
    assert [str(s) for s in source.view().me.subnets] == ["10.244.1.0/24"]


def test_a_node_with_a_podcidr_outside_the_pod_cidr_is_refused_with_the_reason(api, agents):
    (source,) = agents.start(_register(api, 1, pod_cidr="10.99.1.0/24"))
    assert until(
        lambda: (
            "its podCIDR 10.99.1.0/24 is outside the cluster's pod-cidr "
            "10.244.0.0/16" in source.view().condition
        )
    )
    assert source.view().me is None and "annotations" not in api.node("node-1")["metadata"]


def test_a_missing_node_is_a_condition_naming_the_kubelet(api, agents):
    (source,) = agents.start("node-7")
    assert until(lambda: "there is no Node node-7" in source.view().condition)
    _register(api, 7)
    assert until(lambda: source.view().me is not None, 10)


def test_an_annotation_changed_by_someone_else_is_put_back(api, agents):
    (source,) = agents.start(_register(api, 1))
    assert until(lambda: source.view().me is not None)
    node = api.node("node-1")
    node["metadata"]["annotations"][ANNOTATION] = "198.18.10.99/24"
    api.store.put(node, "MODIFIED")
    assert until(
        lambda: api.node("node-1")["metadata"]["annotations"][ANNOTATION] == "198.18.10.11/24", 10
    )


def test_an_annotation_changed_between_its_publishing_and_the_listing_is_put_back(api, agents):
    """The write lands before the source's first listing, whose watch starts after it: only
    the listing can tell."""

    def overwrite(name: str) -> None:
        api.after_patch = None
        node = api.node(name)
        node["metadata"]["annotations"][ANNOTATION] = "198.18.10.99/24"
        api.store.put(node, "MODIFIED")

    api.after_patch = overwrite
    (source,) = agents.start(_register(api, 1))
    assert until(lambda: api.after_patch is None and source.view().me is not None)
    assert until(
        lambda: api.node("node-1")["metadata"]["annotations"][ANNOTATION] == "198.18.10.11/24", 10
    )


def test_a_node_registered_again_with_other_podcidrs_is_not_renumbered_under_its_pods(api, agents):
    (source,) = agents.start(_register(api, 1))
    assert until(lambda: source.view().me is not None)
    agents.pods.add("node-1")
    api.delete_node("node-1")
    assert until(lambda: "there is no Node node-1" in source.view().condition), source.view()
    _register(api, 1, pod_cidr="10.244.9.0/24")
    assert until(lambda: "does not renumber a node that has pods" in source.view().condition), (
        source.view()
    )
    assert [str(s) for s in source.view().me.subnets] == ["10.244.1.0/24"]


def test_its_own_node_deleted_while_the_watch_was_down_is_noticed_by_the_next_listing(api, agents):
    """No DELETED event comes for a Node deleted while the watch was cut: the listing after
    it must say what the event would have said."""
    (source,) = agents.start(_register(api, 1))
    assert until(lambda: source.view().me is not None)
    api.stop()
    api.delete_node("node-1")
    api.start()
    assert until(
        lambda: "node-1" in source.view().condition and "Node" in source.view().condition
    ), source.view()
