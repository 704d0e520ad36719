"""Address reservations in host-local's layout, without a kernel: the walk, idempotency, release."""

import fcntl
import ipaddress
import os
import threading
from pathlib import Path

import pytest

from runtime.ipam_store import STAGED, Exhausted, IpamStore, Range
from tests.state.locks import waiting_on


def _range(subnet: str, start: str, end: str, gateway: str) -> Range:
    return Range(
        ipaddress.ip_network(subnet),
        ipaddress.ip_address(start),
        ipaddress.ip_address(end),
        ipaddress.ip_address(gateway),
    )


SMALL = [_range("10.0.0.0/29", "10.0.0.1", "10.0.0.6", "10.0.0.1")]


@pytest.fixture
def store(tmp_path):
    return IpamStore(str(tmp_path), "pods")


def test_addresses_are_handed_out_in_order_skipping_the_gateway(store, tmp_path):
    taken = [store.reserve(0, SMALL, f"c{i}", "eth0").address for i in range(5)]
    assert taken == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    with pytest.raises(Exhausted):
        store.reserve(0, SMALL, "c9", "eth0")
    assert (tmp_path / "pods" / "10.0.0.2").read_bytes() == b"c0\r\neth0"
    assert (tmp_path / "pods" / "last_reserved_ip.0").read_text() == "10.0.0.6"


def test_the_walk_continues_after_the_last_reservation_and_wraps(store):
    first = store.reserve(0, SMALL, "a", "eth0").address
    store.reserve(0, SMALL, "b", "eth0")
    store.release("a", "eth0")
    later = [store.reserve(0, SMALL, f"n{i}", "eth0").address for i in range(4)]
    assert later == ["10.0.0.4", "10.0.0.5", "10.0.0.6", first]


def test_an_attachment_holding_an_address_gets_it_again(store):
    lease = store.reserve(0, SMALL, "a", "eth0")
    again = store.reserve(0, SMALL, "a", "eth0", held=lease.address)
    assert again == lease
    assert (lease.prefix, lease.gateway) == (29, "10.0.0.1")


def test_a_requested_address_is_taken_only_when_free(store):
    assert store.reserve(0, SMALL, "a", "eth0", requested="10.0.0.5").address == "10.0.0.5"
    with pytest.raises(Exhausted, match="held by another"):
        store.reserve(0, SMALL, "b", "eth0", requested="10.0.0.5")


def test_release_frees_only_the_attachment_s_addresses(store):
    store.reserve(0, SMALL, "a", "eth0")
    store.reserve(0, SMALL, "b", "eth0")
    assert store.release("a", "eth0") == ["10.0.0.2"]
    assert store.release("a", "eth0") == []
    assert set(store.holders().values()) == {("b", "eth0")}
    assert store.holds("10.0.0.3", "b", "eth0") and not store.holds("10.0.0.3", "a", "eth0")


def test_free_count_sees_every_reservation_of_the_range(store):
    assert store.free_count(SMALL) == 5
    store.reserve(0, SMALL, "a", "eth0")
    assert store.free_count(SMALL) == 4


def test_a_last_reservation_of_the_other_family_is_ignored(store, tmp_path):
    # Range set 0 was IPv4 until the network changed to IPv6 only (or was
    # host-local's IPv6 set, where netc numbers IPv4 first): its
    # last_reserved_ip.0 is left behind, in none of the new ranges.
    (tmp_path / "pods").mkdir()
    (tmp_path / "pods" / "last_reserved_ip.0").write_text("10.0.0.5")
    v6 = [_range("fd00::/120", "fd00::1", "fd00::ff", "fd00::1")]
    assert store.reserve(0, v6, "a", "eth0").address == "fd00::2"
    assert (tmp_path / "pods" / "last_reserved_ip.0").read_text() == "fd00::2"


def test_an_ipv6_64_is_walked_lazily(store):
    big = [_range("fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:fffe", "fd00::1")]
    assert store.reserve(1, big, "a", "eth0").address == "fd00::2"


def test_a_reservation_and_its_release_list_no_directory(store, monkeypatch):
    """The directory holds a file per pod: no call walks it (a DEL that knows its address)."""
    store.reserve(0, SMALL, "a", "eth0")

    def listed(path: str) -> list[str]:
        raise AssertionError(f"listed {path}")

    monkeypatch.setattr(os, "listdir", listed)
    lease = store.reserve(0, SMALL, "b", "eth0")
    assert store.reserve(0, SMALL, "b", "eth0", held=lease.address) == lease
    assert store.release("b", "eth0", [lease.address]) == [lease.address]


def test_the_first_reservation_after_a_boot_frees_what_no_record_explains(tmp_path):
    """The reboot leak: reservations from before the boot whose records went with tmpfs."""
    records = {("kept", "eth0")}
    store = IpamStore(str(tmp_path), "pods", lambda c, i: (c, i) in records)
    for owner in ("kept", "gone-1", "gone-2"):
        store.reserve(0, SMALL, owner, "eth0")
    directory = tmp_path / "pods"
    (directory / ".netc-boot").write_text("an-earlier-boot\n")
    long_ago = 1_000_000_000
    for name in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        os.utime(directory / name, (long_ago, long_ago))
    store.reserve(0, SMALL, "new-since-boot", "eth0")
    assert set(store.holders().values()) == {("kept", "eth0"), ("new-since-boot", "eth0")}
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text()
    assert (directory / ".netc-boot").read_text() == boot_id


def test_a_reservation_a_power_loss_emptied_is_freed_after_the_boot(tmp_path):
    """Nothing is flushed: a power loss may keep a reservation's name and lose its content."""
    store = IpamStore(str(tmp_path), "pods", lambda c, i: True)  # every holder recorded
    for owner in ("torn", "kept"):
        store.reserve(0, SMALL, owner, "eth0")
    directory = tmp_path / "pods"
    (directory / "10.0.0.2").write_bytes(b"")
    (directory / ".netc-boot").write_text("an-earlier-boot\n")
    long_ago = 1_000_000_000
    for name in ("10.0.0.2", "10.0.0.3"):
        os.utime(directory / name, (long_ago, long_ago))
    assert store.reserve(0, SMALL, "new-since-boot", "eth0").address == "10.0.0.4"
    assert not (directory / "10.0.0.2").exists()
    assert store.holders() == {"10.0.0.3": ("kept", "eth0"), "10.0.0.4": ("new-since-boot", "eth0")}


def test_reservations_made_since_the_boot_are_never_reclaimed(tmp_path):
    """host-local may share the directory: what it reserved since the boot is alive."""
    store = IpamStore(str(tmp_path), "pods", lambda c, i: False)
    store.reserve(0, SMALL, "host-local-pod", "eth0")
    (tmp_path / "pods" / ".netc-boot").write_text("an-earlier-boot\n")
    store.reserve(0, SMALL, "netc-pod", "eth0")
    assert set(store.holders().values()) == {("host-local-pod", "eth0"), ("netc-pod", "eth0")}


def test_a_reservation_is_written_before_the_lock_and_only_linked_under_it(
    store, tmp_path, monkeypatch
):
    """Writing it is not done while other ADDs wait for the lock."""
    directory = tmp_path / "pods"
    directory.mkdir()
    refused = waiting_on(monkeypatch)
    holder = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    leases = []
    thread = threading.Thread(target=lambda: leases.append(store.reserve(0, SMALL, "a", "eth0")))
    thread.start()
    try:
        assert refused.wait(30)
        (staged,) = [path for path in directory.iterdir() if path.name.startswith(STAGED)]
        assert staged.read_bytes() == b"a\r\neth0"
    finally:
        os.close(holder)
        thread.join()
    assert [lease.address for lease in leases] == ["10.0.0.2"]
    reservation = directory / "10.0.0.2"
    assert reservation.read_bytes() == b"a\r\neth0" and reservation.stat().st_nlink == 1
    assert not staged.exists()


def test_a_staged_reservation_a_killed_call_left_is_rewritten_or_removed(
    store, tmp_path, monkeypatch
):
    directory = tmp_path / "pods"
    linked = []
    link = os.link
    monkeypatch.setattr(
        os, "link", lambda source, target: (linked.append(source), link(source, target))[1]
    )
    store.reserve(0, SMALL, "a", "eth0")
    staged = Path(linked[0])
    assert staged.parent == directory and not staged.exists()
    store.release("a", "eth0")
    staged.write_bytes(b"half")  # what a call killed before its link leaves
    assert store.reserve(0, SMALL, "a", "eth0").address == "10.0.0.3"
    assert (directory / "10.0.0.3").read_bytes() == b"a\r\neth0" and not staged.exists()
    staged.write_bytes(b"a\r\neth0")  # killed after the link: the ADD again keeps its address
    assert store.reserve(0, SMALL, "a", "eth0", held="10.0.0.3").address == "10.0.0.3"
    assert not staged.exists()
    staged.write_bytes(b"half")
    store.release("a", "eth0")
    assert sorted(os.listdir(directory)) == ["last_reserved_ip.0", "lock"]
