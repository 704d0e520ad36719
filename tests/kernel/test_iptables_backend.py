"""The iptables backend netc runs: detected as kube-proxy's iptables-wrapper does, or chosen.

netc's agent runs its image's iptables, which must write where the node's
other users (kube-proxy, the kubelet) write: two backends on one node are two
rule sets the kernel both applies, neither seeing the other.  The warm server
started with NETC_IPTABLES runs that backend's programs by their explicit
names; without it the node's own `iptables-restore` runs, as before.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runtime import iptables
from runtime.host import sysctl_file, use_proc_sys
from runtime.netns import node_namespace
from tests.kernel import networks
from tests.kernel.lab import Namespaces
from tests.kernel.warm import WarmServer
from tests.support import ROOT

LEGACY_RULES = """*filter
-A INPUT -s 192.0.2.1/32 -j DROP
-A INPUT -s 192.0.2.2/32 -j DROP
-A INPUT -s 192.0.2.3/32 -j DROP
COMMIT
"""
NFT_RULES = """*nat
-A POSTROUTING -s 198.51.100.0/24 -j MASQUERADE
-A POSTROUTING -s 198.51.101.0/24 -j MASQUERADE
COMMIT
*filter
-A FORWARD -s 198.51.100.0/24 -j ACCEPT
-A FORWARD -s 198.51.101.0/24 -j ACCEPT
COMMIT
"""


@pytest.fixture
def namespaces(tmp_path):
    with Namespaces(tmp_path) as made:
        yield made


@pytest.fixture
def default_backend():
    """The backend the test chose is forgotten after it (the module is shared)."""
    yield
    iptables.use_backend(None)


def _detected(name: str) -> iptables.Detected:
    with node_namespace(name):
        return iptables.detect_backend()


def test_the_backend_with_more_rules_wins_and_a_tie_is_nft(namespaces):
    node = namespaces.netns("node")
    assert _detected(node) == iptables.Detected("nft", {"nft": 0, "legacy": 0})
    namespaces.run(node, "iptables-legacy-restore", "--noflush", stdin=LEGACY_RULES)
    assert _detected(node) == iptables.Detected("legacy", {"nft": 0, "legacy": 3})
    namespaces.run(node, "iptables-nft-restore", "--noflush", stdin=NFT_RULES)
    assert _detected(node) == iptables.Detected("nft", {"nft": 4, "legacy": 3})
    assert _detected(node).describe() == "iptables backend nft (4 in nft, 3 in legacy rules)"


def test_the_chosen_backends_programs_run_by_name(namespaces, default_backend):
    node = namespaces.netns("node")
    iptables.use_backend("legacy")
    assert (iptables.program(4, "restore"), iptables.program(6, "save")) == (
        "iptables-legacy-restore",
        "ip6tables-legacy-save",
    )
    assert not iptables.uses_nf_tables()
    with node_namespace(node):
        iptables.restore(4, "nat", [":NETC-X - [0:0]", "-A NETC-X -j RETURN"])
        assert (
            iptables.chains(4, "nat", ["NETC-X"], ["NETC-X"], ["PREROUTING"])["NETC-X"] is not None
        )
    assert "NETC-X" in namespaces.run(node, "iptables-legacy-save").stdout
    assert "NETC-X" not in namespaces.run(node, "iptables-nft-save").stdout
    iptables.use_backend(None)
    assert iptables.program(4, "restore") == "iptables-restore"
    with pytest.raises(ValueError, match="NETC_IPTABLES must be one of nft, legacy"):
        iptables.use_backend("ebtables")


def test_a_warm_server_of_a_legacy_node_writes_the_pods_nat_there(lab):
    WarmServer(lab, iptables="legacy")
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    lab.add(conflist, pod, ports=("8080:80",))
    legacy = lab.run(lab.node, "iptables-legacy-save", "-t", "nat").stdout
    assert "NETC-PO-" in legacy and "NETC-HP-" in legacy and "--dport 8080" in legacy
    assert "NETC" not in lab.run(lab.node, "iptables-nft-save").stdout
    second = lab.pod("q")  # its ADD reads the network's NAT shape from legacy's tables
    lab.add(conflist, second, ports=("8081:80",))
    for each in (pod, second):
        lab.delete(conflist, each, ports=("8081:80",) if each is second else ("8080:80",))
    assert "--dport" not in lab.run(lab.node, "iptables-legacy-save", "-t", "nat").stdout


def test_netc_refuses_an_unknown_backend():
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "status"],
        cwd=ROOT,
        env={**os.environ, "NETC_IPTABLES": "iptables"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "NETC_IPTABLES must be one of nft, legacy, not 'iptables'" in done.stderr


def test_sysctls_through_another_mount_of_proc_sys_net_are_the_namespaces(namespaces, tmp_path):
    """The agent's container has a read-only /proc/sys and the node's /proc/sys/net mounted
    elsewhere: what it reads and writes there is the sysctl of its network namespace."""
    node = namespaces.netns("node")
    assert sysctl_file("/proc/sys/net/bridge") == "/proc/sys/net/bridge"
    script = f"""
set -e
mkdir -p {tmp_path}/host/proc/sys/net
mount --bind /proc/sys/net {tmp_path}/host/proc/sys/net
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
exec ip netns exec {node} {sys.executable} -c '
import sys; sys.path.insert(0, "{ROOT}")
from compiler.planner.ops import Where
from runtime.host import Host, sysctl_file, use_proc_sys
try:
    open("/proc/sys/net/ipv4/ip_forward", "w")
    sys.exit("/proc/sys is writable")
except OSError:
    pass
use_proc_sys("{tmp_path}/host/proc/sys")
assert sysctl_file("net/ipv4/ip_forward") == "{tmp_path}/host/proc/sys/net/ipv4/ip_forward"
host = Host(None)
host.write_sysctl(Where.NODE, "net/ipv4/ip_forward", "1")
print(host.read_sysctl(Where.NODE, "net/ipv4/ip_forward"))
'
"""
    # a mount namespace of its own, its mounts private: nothing reaches the machine's
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert namespaces.run(node, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    use_proc_sys("/proc/sys")
    with pytest.raises(ValueError, match="not below /proc/sys"):
        sysctl_file("/etc/passwd")
