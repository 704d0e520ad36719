"""Issue 22, item 4: the warm server lends nothing a caller does not hold.

`netc serve-cni` runs with every capability; a launcher hands it a call with
its environment and its network and mount namespaces.  A caller that is
root but holds no capability -- or one that set up a mount namespace of its
own -- must not get programs of its choosing run with the server's
capabilities.  Each attack here binds a fake `iptables-restore` over the
real one in a private mount namespace and makes a first ADD, whose node NAT
runs iptables-restore; the fake records the capabilities it ran with.
"""

from __future__ import annotations

from pathlib import Path

from runtime import programs
from tests.faults import calls
from tests.kernel import networks
from tests.kernel.lab import Lab, Pod
from tests.kernel.warm import WarmServer

REAL = "/usr/sbin/iptables-restore"


def _fake(lab: Lab) -> tuple[Path, Path]:
    """A fake iptables-restore writing its CapEff line to an evidence file; both paths."""
    evidence = lab.tmp / "evidence"
    fake = lab.tmp / "fake-iptables-restore"
    fake.write_text(f"#!/bin/sh\ngrep CapEff /proc/self/status >> {evidence}\n"
                    "cat > /dev/null\nexit 0\n")
    fake.chmod(0o755)
    return fake, evidence


def _add_from_a_private_mount_namespace(lab: Lab, pod: Pod, fake: Path, *caps: str
                                        ) -> calls.Answer:
    """A first ADD by a launcher whose mount namespace has `fake` over iptables-restore.

    `caps` wrap the launcher (setpriv options); none: a root with every capability.
    """
    conflist = lab.network(networks.FULL)
    script = f'mount --bind "$1" {REAL} && shift && exec "$@"'
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
               str(fake), *(["setpriv", *caps] if caps else [])]
    return calls.call(lab, calls.request(conflist), calls.environment("ADD", pod), wrapper)


def _capabilities(evidence: Path) -> list[int]:
    """The effective capability sets the fake program ran with, one per run."""
    if not evidence.exists():
        return []
    return [int(line.split()[1], 16) for line in evidence.read_text().splitlines()]


def test_a_capability_less_root_gets_no_program_run_with_the_servers_capabilities(
        lab: Lab, warm: WarmServer):
    fake, evidence = _fake(lab)
    answer = _add_from_a_private_mount_namespace(
        lab, lab.pod("p"), fake, "--bounding-set", "-all", "--inh-caps", "-all")
    assert all(caps == 0 for caps in _capabilities(evidence)), _capabilities(evidence)
    assert warm.calls_served() == 0, warm.log()
    assert "lacks capabilities" in warm.log()
    assert answer.status != 0  # the launcher ran it itself, with nothing: the kernel refused


def test_the_server_runs_its_own_programs_whatever_the_callers_mount_namespace_holds(
        lab: Lab, warm: WarmServer):
    fake, evidence = _fake(lab)
    answer = _add_from_a_private_mount_namespace(lab, lab.pod("p"), fake)
    assert answer.status == 0, answer.stdout
    assert warm.calls_served() == 1, warm.log()
    assert _capabilities(evidence) == []
    nat = lab.run(lab.node, "iptables-save", "-t", "nat").stdout
    assert "NETC-PO-" in nat, "the real iptables-restore set up the network's NAT"


def test_programs_get_a_fixed_environment(monkeypatch):
    """A caller's LD_PRELOAD or PATH reaches no program netc starts as root."""
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    monkeypatch.setenv("PATH", "/tmp/evil:/usr/bin:/bin")
    listed = programs.run("env").decode().splitlines()
    assert listed == [f"PATH={':'.join(programs.SEARCH_PATH)}"]
