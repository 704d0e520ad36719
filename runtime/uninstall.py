"""`netc uninstall`: everything netc put on a node, taken away -- and nothing else.

Once the DaemonSet is deleted (or on a node set up by hand), one command
removes what netc left, in this order, each step only what is there:

    pods        refused while an attachment is known (a record, an address
                held, a host port claimed), unless forced: then their DEL
    conflists   those netc's manifest lists and nobody edited since (an
                edited one is left, and said), the manifest once it owns none
    plugin      netc-cni and its cold file, when they are netc's
    socket      the warm server's, refused while a server answers there
    iptables    each network's chains and the rules jumping to them, both
                families and every table the node's plan writes (the raw
                table's loopback guard too), derived from that plan
    links       the networks' bridges
    cluster     netc's routes (its protocol, within the pod CIDRs) and its
                VXLAN device (its alias): the node plan's prune, nothing kept
    files       records, locks, host-port claims, reservations and the IPAM
                layout's files of these networks, a dynamic cluster's memory;
                only names netc creates, a directory only once it is empty

What stays is said: forwarding and the bridge's netfilter sysctls (netc does
not know what they were before, and Kubernetes needs them) and the
br_netfilter module.  The caller lists the steps (a dry run) or carries
them out; the kernel's part runs in the namespace the caller is in.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Callable, Iterator, Sequence

from compiler.datatypes import frozen, replace
from compiler.errors import NetcError
from compiler.ir import Cluster, Network
from compiler.planner import iptables as rules
from compiler.planner.attach import FORWARDING
from compiler.planner.names import hostport_claims_path, owner_of
from compiler.planner.node import node_plan
from compiler.planner.ops import Kind, Operation, Plan, State, has_params
from compiler.planner.params import IptablesNodeParams, NodePruneParams
from runtime import detach, executor, outdir, shim
from runtime.files import TEMPORARY_PREFIX, locked, read_text, remove
from runtime.host import Host
from runtime.iptables import LIVE, restore
from runtime.membership import STATUS_FILE
from runtime.ops.peers import NodePruneHandler

PLUGIN = "netc-cni"
MARKS = (
    shim.MARK,
    b"# netc-cni: netc's CNI plugin.",
    b"# netc-cni launcher written by `netc install-plugin`",
)
"""What every plugin file netc writes holds: the shim's configuration block, the artifact's
and the launcher's first comment."""
IPAM_FILE = re.compile(r"last_reserved_ip\.\d+|lock|\.netc-boot")
STATE_FILE = re.compile(r"[0-9a-f]+\.json|lock|nat-ipv[46]\.[0-9a-f]+")
"""A network's state directory: records, its lock, and the NAT markers older netcs wrote."""
TEARDOWN_TURN = "iptables.lock"
"""In a state dir: the node's turn for NAT teardowns, which netcs of 2026-12-07 03:11-04:20
UTC took (docs/benchmarks.md); no netc takes it now."""
STAYS = (
    f"{FORWARDING[4]}, {FORWARDING[6]} and "
    "net.bridge.bridge-nf-call-ip(6)tables stay as they are: netc does not know what they "
    "were before it set them, and Kubernetes needs them; so does the br_netfilter module"
)


class Refused(NetcError):
    """Something on the node still uses netc: nothing was removed."""


@frozen
class Node:
    """Where netc's things are on the node, as the agent or `netc install-plugin` put them."""

    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dir: str = "/opt/cni/bin"
    socket: str = "/run/netc/cni.sock"
    memory_dir: str = "/var/lib/netc"


@frozen
class Step:
    """One thing to remove and how; `act` None: it stays, and `what` says why."""

    what: str
    act: Callable[[], object] | None = None


@contextlib.contextmanager
def opened() -> Iterator[Host]:
    """The node's netlink handles for the steps' lifetime (listing and carrying out)."""
    host = Host(None)
    try:
        yield host
    finally:
        host.close()


def steps(
    host: Host,
    networks: Sequence[Network],
    cluster: Cluster | None,
    node_name: str,
    node: Node,
    *,
    force: bool = False,
) -> list[Step]:
    """Everything to remove from the node, in order; `Refused` while something uses netc."""
    _refuse_a_running_server(node.socket)
    found = [step for network in networks for step in _attachments(network, force)]
    plan = node_plan(cluster, node_name, networks)
    found += _conflists(node.cni_conf_dir)
    found += _plugin(node.cni_bin_dir)
    found += _socket(node.socket)
    found += [
        step for op in plan.operations if has_params(op, IptablesNodeParams) for step in _chains(op)
    ]
    found += [
        step
        for op in plan.operations
        if op.kind == Kind.LINK_BRIDGE
        for step in _bridge(host, op.target)
    ]
    found += [
        step
        for op in plan.operations
        if has_params(op, NodePruneParams)
        for step in _owned_by_cluster(host, plan, op)
    ]
    found += [step for network in networks for step in _network_files(network)]
    found += [
        step
        for state_dir in sorted({n.state_dir for n in networks})
        for step in _files(state_dir, TEARDOWN_TURN.__eq__, "an earlier netc's teardown lock")
    ]
    found += _memory(node.memory_dir, cluster)
    directories = sorted(
        d
        for d in {
            os.path.dirname(node.socket),
            node.memory_dir,
            *(n.state_dir for n in networks),
            *(n.ipam.data_dir for n in networks if n.ipam),
        }
        if os.path.isdir(d)
    )
    if directories:
        found.append(Step(f"{', '.join(directories)}, once empty", lambda: _rmdirs(directories)))
    return [*found, Step(STAYS)]


def carry_out(found: Sequence[Step], say: Callable[[str], None]) -> None:
    """Remove each step's thing, saying it as it goes."""
    for step in found:
        if step.act is None:
            say(f"stays: {step.what}")
            continue
        step.act()
        say(f"removed {step.what}")


def _refuse_a_running_server(path: str) -> None:
    """A server answering on the socket is an agent at work: uninstalling under it would race."""
    if not _is_socket(path):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            return  # a socket nobody listens on: the agent's, left when it died
    raise Refused(
        f"a warm server answers on {path}: netc's agent still runs on this node",
        details="delete the DaemonSet first (kubectl delete -f netc.yaml), or stop "
        "netc serve-cni, then run netc uninstall again",
    )


def _attachments(network: Network, force: bool) -> list[Step]:
    """The DEL of each pod the node knows of for `network` (forced), or `Refused`."""
    known = detach.known_attachments(network)
    if known and not force:
        (container, ifname), evidence = sorted(known.items())[0]
        raise Refused(
            f"{len(known)} pod attachment{'s' if len(known) != 1 else ''} of network "
            f"{network.name} still on the node, e.g. {container}/{ifname} "
            f"({', '.join(evidence)})",
            details="remove the pods first, or give --force to run their DEL",
        )
    return [
        Step(
            f"pod {container}/{ifname} of network {network.name} (its DEL; {', '.join(evidence)})",
            _deleting(network, container, ifname),
        )
        for (container, ifname), evidence in sorted(known.items())
    ]


def _deleting(network: Network, container: str, ifname: str) -> Callable[[], None]:
    def delete() -> None:
        with locked(os.path.join(network.state_dir, network.name, "lock")):
            (done,) = detach.collect(network, lambda c, i: (c, i) != (container, ifname))
        if done.error:
            raise NetcError(f"DEL of {container}/{ifname} failed: {done.error}")

    return delete


def _conflists(directory: str) -> list[Step]:
    """The conflists netc wrote and nobody changed since, then the manifest once it owns none."""
    plan = outdir.plan_directory(directory, {})
    found = []
    for change in plan.changes:
        path = os.path.join(directory, change.name)
        if change.action == outdir.FileAction.REMOVE:
            found.append(Step(f"conflist {path}", _removing(path)))
        else:
            found.append(
                Step(f"{path}: netc wrote it, someone edited it since; netc never removes an edit")
            )
    manifest = os.path.join(directory, outdir.MANIFEST)
    kept = plan.others or any(c.action != outdir.FileAction.REMOVE for c in plan.changes)
    if os.path.exists(manifest):
        found.append(
            Step(f"{manifest}: it still lists the files left")
            if kept
            else Step(f"{manifest} (the list of the conflists netc wrote)", _removing(manifest))
        )
    return found


def _plugin(directory: str) -> list[Step]:
    """netc-cni and its cold file, each when it is netc's (the shim first: it runs the other)."""
    found = []
    for name in (PLUGIN, shim.COLD):
        path = os.path.join(directory, name)
        content = _regular_file(path)
        if content is None:
            continue
        if any(mark in content for mark in MARKS):
            found.append(Step(f"plugin {path}", _removing(path)))
        else:
            found.append(Step(f"{path}: not netc's plugin"))
    return found


def _socket(path: str) -> list[Step]:
    """The warm server's socket (nobody listens: checked first) and the agent's member list."""
    found = [Step(f"socket {path}", _removing(path))] if _is_socket(path) else []
    members = os.path.join(os.path.dirname(path), STATUS_FILE)
    if _regular_file(members) is not None:
        found.append(Step(f"{members} (the agent's view of its cluster)", _removing(members)))
    return found


def _chains(op: Operation[IptablesNodeParams]) -> list[Step]:
    """A network's chains of one table and family, and the rules jumping to them."""
    family, table = op.params.family, op.params.table
    lines = rules.node_teardown(op.params, LIVE)
    if not lines:
        return []
    names = op.params.chain_names
    return [
        Step(
            f"IPv{family} {table} chains {', '.join(names)} and their jumps",
            lambda: restore(family, table, lines),
        )
    ]


def _bridge(host: Host, name: str) -> list[Step]:
    link = host.node.link(name)
    if link is None or link.kind != "bridge":
        return []
    return [Step(f"bridge {name}", lambda: host.node.delete(name))]


def _owned_by_cluster(host: Host, plan: Plan, prune: Operation[NodePruneParams]) -> list[Step]:
    """The cluster's routes and devices of netc's: the prune of a plan that keeps nothing."""
    nothing = replace(
        prune, params=replace(prune.params, routes=(), neighbours=(), fdb=(), device=None)
    )
    run = executor.Run(host, replace(plan, operations=(nothing,)))
    handler = NodePruneHandler()
    seen = handler.observe(nothing, run)
    if seen.state == State.IN_PLACE:
        return []
    return [
        Step(
            f"netc's {(seen.detail or '').removeprefix('would remove ')} of cluster "
            f"{prune.params.cluster}",
            lambda: handler.ensure(nothing, run),
        )
    ]


def _network_files(network: Network) -> list[Step]:
    """A network's state and IPAM files, only the names netc creates."""
    state = os.path.join(network.state_dir, network.name)
    found = _files(
        state, lambda name: bool(STATE_FILE.fullmatch(name)), f"state of network {network.name}"
    )
    claims = hostport_claims_path(network.state_dir)

    def claimed(name: str) -> bool:
        return (owner_of(read_text(os.path.join(claims, name)) or "") or ("",))[0] == network.name

    others = [n for n in _names(claims) if n != "lock" and not claimed(n)]
    found += _files(
        claims,
        lambda name: claimed(name) or (name == "lock" and not others),
        f"host-port claims of network {network.name}",
    )
    if network.ipam is not None:
        data = os.path.join(network.ipam.data_dir, network.name)
        found += _files(
            data,
            lambda name: bool(IPAM_FILE.fullmatch(name)) or _address(name),
            f"IPAM data of network {network.name}",
        )
    return found


def _names(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def _files(directory: str, netcs: Callable[[str], bool], what: str) -> list[Step]:
    """The files of `directory` netc made (`netcs` says which), the directory once empty."""
    mine = [n for n in _names(directory) if n.startswith(TEMPORARY_PREFIX) or netcs(n)]
    if not mine:
        return []
    paths = [os.path.join(directory, n) for n in mine]

    def remove_all() -> None:
        for path in paths:
            remove(path)
        _rmdir(directory)

    return [
        Step(f"{what}: {len(mine)} file{'s' if len(mine) != 1 else ''} in {directory}", remove_all)
    ]


def _memory(directory: str, cluster: Cluster | None) -> list[Step]:
    """What a node of a dynamic cluster remembers of its block (`netc leave` frees the block)."""
    if cluster is None or not cluster.membership.dynamic:
        return []
    path = os.path.join(directory, f"{cluster.name}.json")
    if _regular_file(path) is None:
        return []
    return [
        Step(
            f"{path} (the block this node held in cluster {cluster.name}; netc leave frees "
            "it in the datastore)",
            _removing(path),
        )
    ]


def _removing(path: str) -> Callable[[], object]:
    return lambda: remove(path)


def _rmdirs(directories: Sequence[str]) -> None:
    for directory in directories:
        _rmdir(directory)


def _rmdir(directory: str) -> None:
    """Remove a directory once it is empty; one that is not, or is gone, stays as it is."""
    try:
        os.rmdir(directory)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.ENOENT, errno.EEXIST, errno.EBUSY):
            raise


def _address(name: str) -> bool:
    """Whether a file name is an address: a reservation of host-local's layout."""
    with contextlib.suppress(ValueError):
        return bool(ipaddress.ip_address(name))
    return False


def _is_socket(path: str) -> bool:
    with contextlib.suppress(FileNotFoundError):
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    return False


def _regular_file(path: str) -> bytes | None:
    """A regular file's bytes, never through a symbolic link; None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read() if stat.S_ISREG(os.fstat(fd).st_mode) else None
