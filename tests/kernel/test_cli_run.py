"""`netc run` from the command line, with netc's plugin and with the stock ones."""

import json
import subprocess
import sys

import pytest

from tests.kernel import networks


def _run(lab, command: str, conflist, pod, *extra: str) -> subprocess.CompletedProcess:
    argv = [
        sys.executable,
        "-m",
        "runtime.cli",
        "run",
        command,
        str(conflist),
        "--netns",
        pod.netns,
        "--container-id",
        pod.container_id,
        "--node-netns",
        lab.node,
        "--cni-path",
        f"{lab.bin_dir}:/usr/lib/cni",
        "--cache-dir",
        str(lab.tmp / "cache"),
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("target", ["netc", "reference"])
def test_run_adds_checks_and_deletes_a_pod(lab, target):
    conflist = lab.network(networks.FULL, target=target)
    pod = lab.pod("p")
    added = _run(lab, "add", conflist, pod, "--port", "8080:80", "--bandwidth", "ingress=8M")
    assert added.returncode == 0, added.stdout + added.stderr
    result = json.loads(added.stdout)
    assert result["ips"][0]["address"].startswith("10.77.0.")
    assert (lab.tmp / "cache" / "results" / f"labnet-{pod.container_id}-eth0").exists()
    checked = _run(lab, "check", conflist, pod, "--port", "8080:80")
    if target == "netc":
        assert checked.returncode == 0, checked.stdout
    else:  # Debian's portmap 1.1.1 checks IPv4-only pods in ip6tables too (plugins#819)
        assert "could not check ipv6 dnat" in checked.stdout
    assert _run(lab, "del", conflist, pod, "--port", "8080:80").returncode == 0
    assert not (lab.tmp / "cache" / "results" / f"labnet-{pod.container_id}-eth0").exists()
    assert "eth0" not in lab.run(pod.name, "ip", "-o", "link").stdout


def test_a_failing_plugin_prints_its_error_and_exits_1(lab):
    conflist = lab.network(networks.FULL)
    failed = _run(lab, "add", conflist, lab.pod("p"), "--port", "0:80")
    assert failed.returncode in (1, 2)
    assert "port" in (failed.stdout + failed.stderr)
