"""Token-bucket arithmetic shared by the conflist emitter and the planner.

Rates are bits per second and bursts are bits, as in CNI's bandwidth
capability; tc wants bytes.  Runtimes send absurd bursts when a pod gives
none -- containerd 4294967295 bits (512 MiB), CRI-O 34359738359 bits -- and a
bucket that large lets the first seconds of traffic through unshaped
(kubernetes#90838).  netc bounds every bucket a runtime asks for to what the
rate sends in `BURST_WINDOW_MS` milliseconds, and uses that bound when no
burst is given; a burst written in the .netdsl is the admin's and is kept.
No bucket is smaller than `MIN_BURST_BYTES`: TBF drops a packet larger than
its bucket, and jumbo frames reach 9 KiB.
"""

from __future__ import annotations

from compiler.datatypes import frozen

BURST_WINDOW_MS = 100
MIN_BURST_BYTES = 16 * 1024
QUEUE_LATENCY_MS = 25
"""How long a packet may wait in the bucket's queue (the reference plugin's value)."""


@frozen
class Bucket:
    """tc TBF parameters in bytes, derived from a rate and a requested burst."""

    rate_bytes: int
    burst_bytes: int
    limit_bytes: int

    @property
    def rate_bits(self) -> int:
        """The rate in bit/s, as CNI counts it."""
        return self.rate_bytes * 8

    @property
    def burst_bits(self) -> int:
        """The bucket in bits, as CNI counts it."""
        return self.burst_bytes * 8


def burst_cap_bytes(rate_bits: int) -> int:
    """The largest bucket netc installs for a rate."""
    return max(rate_bits // 8 * BURST_WINDOW_MS // 1000, MIN_BURST_BYTES)


def bucket(rate_bits: int, burst_bits: int | None, *, bound: bool = True) -> Bucket:
    """The TBF for a rate and an optional burst, the queue sized for it.

    Bursts a runtime sends are bounded (`bound`); a burst an admin wrote in
    the .netdsl is taken as written.  No burst means the bound.
    """
    rate_bytes = max(1, rate_bits // 8)
    cap = burst_cap_bytes(rate_bits)
    wanted = cap if not burst_bits else burst_bits // 8
    burst_bytes = max(min(wanted, cap) if bound else wanted, MIN_BURST_BYTES)
    limit = rate_bytes * QUEUE_LATENCY_MS // 1000 + burst_bytes
    return Bucket(rate_bytes, burst_bytes, limit)


def describe_rate(bits: int) -> str:
    """A rate for people: 8000000 -> '8 Mbit/s'."""
    units = ((10**12, "Tbit/s"), (10**9, "Gbit/s"), (10**6, "Mbit/s"), (10**3, "kbit/s"))
    for factor, unit in units:
        if bits >= factor:
            return f"{bits / factor:g} {unit}"
    return f"{bits} bit/s"
