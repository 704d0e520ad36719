r"""IPAM state in host-local's on-disk layout, so a node can switch plugins safely.

    <data_dir>/<network>/<ip>                   "<container id>\\r\\n<ifname>"
    <data_dir>/<network>/last_reserved_ip.<N>   the last address given from range set N
    <data_dir>/<network>/lock                   flock held around every change
    <data_dir>/<network>/.netc-staged-<digest>  a reservation being made, before its link

Same walk as host-local: start after the last reserved address of the range
set, go round the ranges, skip the gateways, take the first name nobody holds.

The reboot leak: reservations live on disk, attachment records on tmpfs, so
after a reboot every reservation outlives its record and its pod
(plugins#252, kubernetes#108121).  The first reservation after a boot (a
`.netc-boot` file holding another boot id) frees every reservation older
than the boot whose attachment has no record, whatever cniVersion the
runtime speaks (CNI's GC exists only in 1.1.0).
Two differences on purpose: a reservation file is linked into place once
written, so no call ever finds one empty, and reserving again for an
attachment that already holds an address returns that address instead of
failing, so a repeated ADD is idempotent.  Nothing is flushed, as host-local
flushes nothing: a power loss may keep a reservation's name and lose its
content, and the first reservation after the boot frees such a torn one too
(a pod that held it went with the boot).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
from collections.abc import Callable, Iterator, Sequence

from compiler.datatypes import frozen
from compiler.digests import sha256
from compiler.errors import Code, NetcError
from compiler.ir import IPAddress, IPNetwork
from compiler.planner.params import AddressRange
from runtime.files import (
    link_exclusively,
    locked,
    overwrite,
    private_directory,
    read_text,
    remove,
    write_atomically,
)


class Exhausted(NetcError):
    """No free address is left in a range set (or the requested one is taken)."""

    code = Code.NO_ADDRESS


@frozen
class Range:
    """One range of a range set, as the plan gives it."""

    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    gateway: IPAddress

    @classmethod
    def from_plan(cls, planned: AddressRange) -> Range:
        """A range from the `ranges` parameter of an ipam.address operation."""
        return cls(
            ipaddress.ip_network(planned.subnet),
            ipaddress.ip_address(planned.start),
            ipaddress.ip_address(planned.end),
            ipaddress.ip_address(planned.gateway),
        )

    def spans(self, address: IPAddress) -> bool:
        """Whether `address` is one of start..end.

        Never one of the other family, which `ipaddress` refuses to compare: a
        `last_reserved_ip` left from when the range set was of that family.
        """
        return address.version == self.start.version and int(self.start) <= int(address) <= int(
            self.end
        )

    def at(self, value: int) -> IPAddress:
        """The address of this range's family whose integer is `value`."""
        return type(self.start)(value)


@frozen
class Lease:
    """An address held by an attachment, with what the pod needs to use it."""

    address: str
    prefix: int
    gateway: str


BOOT_MARKER = ".netc-boot"
STAGED = ".netc-staged-"
"""The prefix of a reservation written before it is linked to its address (`IpamStore._staged`)."""
BOOT_ID = "/proc/sys/kernel/random/boot_id"


class IpamStore:
    """The reservations of one network.

    `recorded(container_id, ifname)` tells whether an attachment has a record;
    without it there is no reclaiming after a boot.
    """

    def __init__(
        self, data_dir: str, network: str, recorded: Callable[[str, str], bool] | None = None
    ) -> None:
        self.directory = os.path.join(data_dir, network)
        self.recorded = recorded

    def _locked(self) -> contextlib.AbstractContextManager[float]:
        return locked(
            self._path("lock"),
            logged_as=f"the addresses of {os.path.basename(self.directory)}",
            kind="addresses",
        )

    def _path(self, address: str) -> str:
        return os.path.join(self.directory, address)

    def _owner(self, container_id: str, ifname: str) -> bytes:
        return f"{container_id}\r\n{ifname}".encode()

    def reserve(
        self,
        range_set: int,
        ranges: Sequence[Range],
        container_id: str,
        ifname: str,
        *,
        held: str | None = None,
        requested: str | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> Lease:
        """An address for the attachment; its caller holds the attachment's lock.

        `held` again if the attachment still owns it (and asks for no other),
        else the `requested` one if it is free, else the next free one.
        `announce` is told an address before it is taken, so a caller killed
        in between can find it again (and not take a second one).

        The reservation's content is written before the directory's lock is
        taken and linked to its address under it: the lock is held for the
        walk and one link.
        """
        owner = self._owner(container_id, ifname)
        staged = self._staged(owner)
        if held and held == (requested or held) and self._owned(held, owner):
            remove(staged)  # what a killed ADD may have left
            return _lease(held, ranges)  # freed only by this attachment's DEL, which waits
        try:
            private_directory(self.directory)
            overwrite(staged, owner)
            with self._locked():
                self._reclaim_after_boot()
                if requested:
                    return self._take(requested, owner, staged, ranges)
                for candidate in self._candidates(range_set, ranges):
                    if os.path.lexists(self._path(candidate)):
                        continue
                    if announce is not None:
                        announce(candidate)
                    if link_exclusively(staged, self._path(candidate)):
                        overwrite(self._path(f"last_reserved_ip.{range_set}"), candidate.encode())
                        return _lease(candidate, ranges)
        finally:
            remove(staged)
        shown = ",".join(f"{r.start}-{r.end}" for r in ranges)
        raise Exhausted(f"no IP addresses available in range set {shown}")

    def _staged(self, owner: bytes) -> str:
        """Where an attachment's reservation is written before it is linked to its address.

        A name of its own per attachment (whose calls take turns), hidden from
        the walk and from host-local's parsing of addresses; one a killed call
        left is rewritten by the attachment's next ADD and removed by its DEL.
        """
        return self._path(f"{STAGED}{sha256(owner).hexdigest()[:32]}")

    def _take(self, address: str, owner: bytes, staged: str, ranges: Sequence[Range]) -> Lease:
        if not link_exclusively(staged, self._path(address)) and not self._owned(address, owner):
            raise Exhausted(f"requested address {address} is held by another attachment")
        return _lease(address, ranges)

    def release(self, container_id: str, ifname: str, held: Sequence[str] = ()) -> list[str]:
        """Free the attachment's addresses; with `held` right, no directory walk is needed."""
        owner = self._owner(container_id, ifname)
        remove(self._staged(owner))
        with self._locked():
            freed = [name for name in held if self._owned(name, owner)]
            if not freed:
                names = self._names()
                freed = [n for n in names if self._owned(n, owner)] or [
                    n for n in names if self._owned(n, container_id.encode())
                ]
            for name in freed:
                remove(self._path(name))
        return freed

    def _reclaim_after_boot(self) -> list[str]:
        """Once per boot: free reservations from before it that no record explains.

        One whose content a power loss took (its name kept) names no holder: it
        is freed too, whatever the records say.
        """
        if self.recorded is None:
            return []
        boot = read_text(BOOT_ID)
        if boot is None or read_text(self._path(BOOT_MARKER)) == boot:
            return []
        booted = time.time() - float((read_text("/proc/uptime") or "0").split()[0])
        freed = []
        for name in self._names():
            container_id, ifname = self._holder(name)
            explained = bool(container_id) and self.recorded(container_id, ifname)
            if not explained and _mtime(self._path(name)) < booted:
                remove(self._path(name))
                freed.append(name)
        private_directory(self.directory)
        write_atomically(self._path(BOOT_MARKER), boot.encode(), durable=True, locked=True)
        return freed

    def _holder(self, name: str) -> tuple[str, str]:
        content = read_text(self._path(name)) or ""
        container_id, _, ifname = content.strip().partition("\r\n")
        return container_id, ifname

    def holders(self) -> dict[str, tuple[str, str]]:
        """Every reserved address with the (container ID, ifname) holding it."""
        found = {}
        for name in self._names():
            container_id, ifname = self._holder(name)
            if container_id:
                found[name] = (container_id, ifname)
        return found

    def holds(self, address: str, container_id: str, ifname: str) -> bool:
        """Whether the attachment owns `address` on disk."""
        return self._owned(address, self._owner(container_id, ifname))

    def free_count(self, ranges: Sequence[Range]) -> int:
        """How many addresses of a range set nobody holds (for STATUS)."""
        taken = [address for n in self._names() if (address := _parse(n)) is not None]
        return sum(_size(r) - sum(r.spans(a) for a in taken) for r in ranges)

    def _owned(self, name: str, owner: bytes) -> bool:
        content = read_text(self._path(name))
        return content is not None and content.strip().encode() == owner

    def _names(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return [n for n in names if n != "lock" and not n.startswith(("last_reserved_ip", "."))]

    def _candidates(self, range_set: int, ranges: Sequence[Range]) -> Iterator[str]:
        """Every usable address once, starting after the last one reserved.

        Lazy, because an IPv6 /64 has more addresses than any list can hold.
        """
        private_directory(self.directory)
        first, after = 0, int(ranges[0].start)
        last = _parse(read_text(self._path(f"last_reserved_ip.{range_set}")))
        for index, entry in enumerate(ranges):
            if last is not None and entry.spans(last):
                first, after = index, int(last) + 1
        count = len(ranges)
        for step in range(count):
            entry = ranges[(first + step) % count]
            yield from _walk(entry, after if step == 0 else int(entry.start), int(entry.end))
        if after > int(ranges[first].start):
            yield from _walk(ranges[first], int(ranges[first].start), after - 1)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return float("inf")


def _walk(entry: Range, low: int, high: int) -> Iterator[str]:
    """The addresses low..high (as integers) of a range, its gateway skipped."""
    gateway = int(entry.gateway)
    for value in range(low, high + 1):
        if value != gateway:
            yield str(entry.at(value))


def _size(entry: Range) -> int:
    size = int(entry.end) - int(entry.start) + 1
    return size - entry.spans(entry.gateway)


def _parse(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _lease(address: str, ranges: Sequence[Range]) -> Lease:
    ip = ipaddress.ip_address(address)
    entry = next(r for r in ranges if ip in r.subnet)
    return Lease(address, entry.subnet.prefixlen, str(entry.gateway))
