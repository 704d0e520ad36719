"""The stock `tuning` and `firewall` plugins chained after netc-cni, and what they leave.

Both come from Debian's containernetworking-plugins (/usr/lib/cni).  tuning
writes sysctls inside the pod's network namespace, on the interface netc-cni
made; firewall (its iptables backend) adds two rules per pod address to its
CNI-FORWARD chain, in the namespace it runs in -- the node's -- and takes them
out on DEL, for the addresses of the `prevResult` it gets then.
"""

from __future__ import annotations

from tests.kernel.lab import Namespaces

SYSCTLS = {"net.core.somaxconn": "1234", "net.ipv4.conf.eth0.accept_local": "1"}
"""Two sysctls of the pod's namespace; the second names the interface netc-cni creates."""

STATEMENTS = (
    "    chain tuning { sysctl { "
    + "; ".join(f'"{key}" "{value}"' for key, value in SYSCTLS.items())
    + " } }\n"
    '    chain firewall { backend "iptables" }\n'
)
"""The `chain` lines of a network block."""


def sysctls(lab: Namespaces, netns: str) -> dict[str, str | None]:
    """The values of `SYSCTLS`' keys in a namespace (None: no such key, as before eth0 is)."""
    found = {key: lab.run(netns, "sysctl", "-n", key, check=False) for key in SYSCTLS}
    return {
        key: done.stdout.strip() if done.returncode == 0 else None for key, done in found.items()
    }


def firewall_rules(lab: Namespaces, netns: str, address: str) -> list[str]:
    """The firewall plugin's rules for one pod address (no prefix) in a namespace's filter
    table: two while the pod is attached, none before and after."""
    six = ":" in address
    saved = lab.run(netns, "ip6tables-save" if six else "iptables-save", "-t", "filter").stdout
    host = f"{address}/{128 if six else 32}"
    return [
        line
        for line in saved.splitlines()
        if line.startswith("-A CNI-FORWARD ") and host in line.split()
    ]
