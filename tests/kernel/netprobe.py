"""A tiny TCP/UDP responder and client for traffic tests, run inside namespaces.

    python -m tests.kernel.netprobe serve tcp 80 pod-a     # answers "pod-a <peer ip>"
    python -m tests.kernel.netprobe ask udp 198.18.0.1 8080 [--sport 40000]
    python -m tests.kernel.netprobe flow 10.244.2.5 80 --rate 100     # until SIGTERM
    python -m tests.kernel.netprobe watch 9999 127.0.0.1 10.77.0.1   # "127.0.0.1 PAYLOAD" lines
    python -m tests.kernel.netprobe frame eth0 MAC 10.77.0.5 9999 127.0.0.1=hi 10.77.0.1=x

The answer names the server and the source address it saw, so a test can
tell which pod answered and whether the traffic was masqueraded.  A flow
sends numbered UDP datagrams to a UDP responder at a steady rate until it is
told to stop (SIGTERM), then waits a second for the last answers and prints
`sent N answered M longest-gap-ms G`: what an outage cost a running flow.
`watch` and `frame` are an attacker's view: UDP datagrams written as raw
Ethernet frames (what CAP_NET_RAW, in every container's default set,
allows), and the servers that see them or not.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import select
import signal
import socket
import struct
import sys
import time

FAMILY = {True: socket.AF_INET6, False: socket.AF_INET}


def serve(protocol: str, port: int, tag: str) -> None:
    """Answer every TCP connection or UDP datagram with the tag and the peer's address."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    server = socket.socket(socket.AF_INET6, kind)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("::", port))
    if kind == socket.SOCK_STREAM:
        server.listen(16)
    print("ready", flush=True)
    while True:
        if kind == socket.SOCK_STREAM:
            connection, peer = server.accept()
            connection.sendall(f"{tag} {_plain(peer[0])}\n".encode())
            connection.close()
        else:
            _, peer = server.recvfrom(2048)
            server.sendto(f"{tag} {_plain(peer[0])}\n".encode(), peer)


def _plain(address: str) -> str:
    return address.removeprefix("::ffff:")


def ask(protocol: str, host: str, port: int, source_port: int | None) -> int:
    """Print the server's answer; exit 1 when none comes within two seconds."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    client = socket.socket(FAMILY[":" in host], kind)
    client.settimeout(2)
    if source_port:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        client.bind(("", source_port))
    try:
        client.connect((host, port))
        if kind == socket.SOCK_DGRAM:
            client.send(b"hello")
        print(client.recv(2048).decode().strip())
    except OSError as error:
        print(f"no answer: {error}", file=sys.stderr)
        return 1
    return 0


def flow(host: str, port: int, rate: float) -> None:
    """Send `rate` datagrams a second until SIGTERM; count the answers and the longest gap."""
    stopped: list[float] = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(time.monotonic()))
    client = socket.socket(FAMILY[":" in host], socket.SOCK_DGRAM)
    client.connect((host, port))
    print("ready", flush=True)
    sent = answered = 0
    gap = 0.0
    last = due = time.monotonic()
    while not stopped or time.monotonic() < stopped[0] + 1.0:  # a second for the last answers
        now = time.monotonic()
        if not stopped and now >= due:
            client.send(str(sent).encode())
            sent += 1
            due += 1 / rate
        wait = 0.05 if stopped else max(0.0, min(due - now, 0.05))
        if not select.select([client], [], [], wait)[0]:
            continue
        try:
            client.recv(2048)
        except OSError:  # refused (ICMP unreachable) while routes change: no answer
            continue
        answered += 1
        gap, last = max(gap, now - last), now
    print(f"sent {sent} answered {answered} longest-gap-ms {gap * 1000:.0f}", flush=True)


def watch(port: int, addresses: list[str]) -> None:
    """Print `ADDRESS PAYLOAD` for each UDP datagram to `port` on one of `addresses`.

    When several sockets are readable at once, they are read in the order
    given: a datagram that arrived before another is printed before it.
    """
    sockets = []
    for address in addresses:
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind((address, port))
        sockets.append(server)
    print("ready", flush=True)
    while True:
        readable = select.select(sockets, [], [])[0]
        for address, server in zip(addresses, sockets, strict=True):
            if server in readable:
                print(address, server.recv(2048).decode(errors="replace"), flush=True)


def frames(interface: str, mac: str, source: str, targets: list[str], port: int) -> None:
    """Send one UDP datagram per `ADDRESS=PAYLOAD` in `targets`, in order, as raw frames to `mac`.

    The process stays on one CPU: frames sent from one CPU are received in
    the order they were sent, so a later one's arrival says the earlier one
    has been delivered or dropped.
    """
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind((interface, 0))
    own = raw.getsockname()[4]
    for target in targets:
        address, _, payload = target.partition("=")
        datagram = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload.encode()
        header = _ipv4_header(source, address, len(datagram))
        raw.send(bytes.fromhex(mac.replace(":", "")) + own + b"\x08\x00" + header + datagram)


def _ipv4_header(source: str, destination: str, payload: int) -> bytes:
    """An IPv4 header (no options, don't fragment, TTL 64) for a UDP payload, checksummed."""
    ends = ipaddress.IPv4Address(source).packed + ipaddress.IPv4Address(destination).packed
    header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + payload, 0, 0x4000, 64, 17, 0) + ends
    total = sum(struct.unpack("!10H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]


def main() -> int:
    """Command line: serve | ask | flow | watch | frame (see the module docstring)."""
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve")
    server.add_argument("protocol", choices=["tcp", "udp"])
    server.add_argument("port", type=int)
    server.add_argument("tag")
    client = commands.add_parser("ask")
    client.add_argument("protocol", choices=["tcp", "udp"])
    client.add_argument("host")
    client.add_argument("port", type=int)
    client.add_argument("--sport", type=int)
    stream = commands.add_parser("flow")
    stream.add_argument("host")
    stream.add_argument("port", type=int)
    stream.add_argument("--rate", type=float, default=100)
    watcher = commands.add_parser("watch")
    watcher.add_argument("port", type=int)
    watcher.add_argument("addresses", nargs="+")
    sender = commands.add_parser("frame")
    sender.add_argument("interface")
    sender.add_argument("mac")
    sender.add_argument("source")
    sender.add_argument("port", type=int)
    sender.add_argument("targets", nargs="+", help="ADDRESS=PAYLOAD, sent in this order")
    options = parser.parse_args()
    if options.command == "serve":
        serve(options.protocol, options.port, options.tag)
        return 0
    if options.command == "flow":
        flow(options.host, options.port, options.rate)
        return 0
    if options.command == "watch":
        watch(options.port, options.addresses)
        return 0
    if options.command == "frame":
        frames(options.interface, options.mac, options.source, options.targets, options.port)
        return 0
    return ask(options.protocol, options.host, options.port, options.sport)


if __name__ == "__main__":
    sys.exit(main())
