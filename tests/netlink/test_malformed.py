"""Replies the kernel does not send in practice, made by hand from recorded ones.

A zero-length or truncated header, stray bytes, an empty datagram, NLMSG_NOOP,
NLMSG_OVERRUN, a done message carrying an error: netc must give a clear
`NetlinkError` (or skip what is harmless), never loop or misread.  Each test
keeps the request of a recording and changes what the "kernel" answers.
"""

from __future__ import annotations

import errno
import struct

import pytest

from runtime.netlink import wire
from runtime.netlink.channel import Channel, NetlinkError
from runtime.netlink.rtnl import Rtnl
from tests.netlink.conversation import RECEIVED, SENT, Conversation, Datagrams, Replay
from tests.netlink.scenes import BRIDGE, SCENES

SEQ = 1
"""The sequence number of the first request on a new channel."""


def answered(name: str, *datagrams: bytes) -> object:
    """The scene's call when its (single) request is answered by `datagrams`."""
    request = [data for direction, data in Conversation.load(name).datagrams if direction == SENT]
    assert len(request) == 1, f"replies/{name}.txt has more than one request"
    replay = Replay([(SENT, request[0])] + [(RECEIVED, data) for data in datagrams])
    return SCENES[name].call(Rtnl(Channel(replay)))


def recorded_reply(name: str) -> bytes:
    """The kernel's single reply datagram in a recording."""
    [reply] = [
        data for direction, data in Conversation.load(name).datagrams if direction == RECEIVED
    ]
    return reply


def refusal(name: str, *datagrams: bytes) -> NetlinkError:
    with pytest.raises(NetlinkError) as caught:
        answered(name, *datagrams)
    return caught.value


def error_message(code: int, flags: int = 0, tlvs: bytes = b"") -> bytes:
    """An NLMSG_ERROR for request SEQ, echoing a bare header."""
    echoed = wire.HEADER.pack(wire.HEADER.size, 0, 0, SEQ, 0)
    return wire.message(wire.NLMSG_ERROR, flags, SEQ, struct.pack("=i", -code) + echoed + tlvs)


def test_a_zero_length_header_is_a_malformed_reply_not_a_loop():
    zero = wire.HEADER.pack(0, wire.NLMSG_ERROR, 0, SEQ, 0) + bytes(4)
    error = refusal("link-bridge", zero)
    assert error.errno == errno.EBADMSG
    assert "a header at byte 0 claims 0 bytes of a 20-byte datagram" in str(error)


def test_a_truncated_reply_is_malformed():
    reply = recorded_reply("link-bridge")
    error = refusal("link-bridge", reply[:100])
    assert error.errno == errno.EBADMSG
    assert f"claims {len(reply)} bytes of a 100-byte datagram" in str(error)


def test_stray_bytes_after_the_last_message_are_malformed():
    error = refusal("link-bridge", recorded_reply("link-bridge") + bytes(8))
    assert error.errno == errno.EBADMSG
    assert "8 stray bytes" in str(error)


def test_an_empty_datagram_is_malformed():
    assert "an empty datagram" in str(refusal("link-bridge", b""))


def test_an_error_too_short_to_hold_its_errno_is_malformed():
    short = wire.message(wire.NLMSG_ERROR, 0, SEQ, b"\xff\xff")
    assert "a 2-byte body where an errno belongs" in str(refusal("link-bridge", short))


def test_noop_and_replies_to_other_requests_are_skipped():
    noop = wire.message(wire.NLMSG_NOOP, 0, SEQ, b"")
    stale = (
        error_message(errno.ENODEV)[:8]
        + struct.pack("=I", SEQ + 41)
        + error_message(errno.ENODEV)[12:]
    )
    link = answered("link-bridge", noop + stale + recorded_reply("link-bridge"))
    assert (link.name, link.index) == (BRIDGE.name, BRIDGE.index)


def test_an_overrun_says_replies_were_lost():
    overrun = wire.message(wire.NLMSG_OVERRUN, 0, SEQ, bytes(4))
    error = refusal("link-bridge", overrun)
    assert error.errno == errno.ENOBUFS
    assert "NLMSG_OVERRUN" in str(error)


def test_a_dump_ending_in_an_error_with_text_fails_with_that_text():
    text = wire.string(wire.NLMSGERR_ATTR_MSG, "dump refused").encode()
    done = wire.message(
        wire.NLMSG_DONE,
        wire.NLM_F_MULTI | wire.NLM_F_ACK_TLVS,
        SEQ,
        struct.pack("=i", -errno.EINVAL) + text,
    )
    error = refusal("addresses-pod-v4", done)
    assert (error.errno, error.detail) == (errno.EINVAL, "dump refused")


def test_a_text_after_a_whole_echoed_request_is_found():
    """Uncapped: the error echoes the whole request, and the text follows it, aligned."""
    request = wire.message(18, 1, SEQ, b"\x01\x02\x03")
    text = wire.string(wire.NLMSGERR_ATTR_MSG, "after the echo").encode()
    padded = request + bytes(wire.align(len(request)) - len(request))
    error = wire.message(
        wire.NLMSG_ERROR, wire.NLM_F_ACK_TLVS, SEQ, struct.pack("=i", -errno.EPERM) + padded + text
    )
    assert wire.outcome(next(wire.messages(error))) == (errno.EPERM, "after the echo")


def test_attributes_stop_at_a_header_shorter_than_itself_and_keep_repeats_in_order():
    body = (
        wire.Attr(3, b"eth0\0").encode()
        + wire.Attr(7, [wire.u32(1, 9)]).encode()
        + wire.Attr(3, b"lo\0").encode()
    )
    broken = body + struct.pack("=HH", 2, 5) + wire.Attr(8, b"late").encode()
    nested = wire.u32(1, 9).encode()
    assert wire.attributes(memoryview(broken)) == [(3, b"eth0\0"), (7, nested), (3, b"lo\0")]
    assert wire.parse_attrs(broken) == {3: b"lo\0", 7: nested}


def test_an_attribute_longer_than_its_message_keeps_what_there_is():
    cut = wire.Attr(3, b"eth0-and-more\0").encode()[:10]
    assert wire.attributes(cut) == [(3, b"eth0-a")]


class _Answering(Datagrams):
    """A socket whose kernel answers a request with the datagrams given, then with nothing."""

    def __init__(self, *datagrams: bytes) -> None:
        self.answers = list(datagrams)

    def send(self, data: bytes) -> int:
        return len(data)

    def recv(self, size: int) -> bytes:
        assert self.answers, "read past the kernel's last answer: the caller would wait forever"
        return self.answers.pop(0)


def test_a_batch_refused_at_its_begin_fails_with_the_kernel_s_reason():
    """The begin message asks for no acknowledgement, yet its refusal (an unknown subsystem,
    say) is the batch's only answer: it is raised, not waited past for the others' acks."""
    begin, end = (16, 0, bytes(4)), (17, 0, bytes(4))
    deletion = (0x0A08, wire.NLM_F_ACK, bytes(4))
    channel = Channel(_Answering(error_message(errno.EINVAL)))
    with pytest.raises(NetlinkError) as refused:
        channel.batch([begin, deletion, end], "delete a chain")
    assert refused.value.errno == errno.EINVAL
    assert "delete a chain: Invalid argument" in str(refused.value)


def test_a_batch_waits_for_each_acknowledgement_it_asked_for():
    """Two deletions asked to be acknowledged: the first ack alone does not end the wait,
    and an error for the second fails the batch."""
    begin, end = (16, 0, bytes(4)), (17, 0, bytes(4))
    deletion = (0x0A08, wire.NLM_F_ACK, bytes(4))
    acked = error_message(0)[:8] + struct.pack("=I", SEQ + 1) + error_message(0)[12:]
    refused = error_message(errno.ENOENT)[:8] + struct.pack("=I", SEQ + 2)
    refused += error_message(errno.ENOENT)[12:]
    channel = Channel(_Answering(acked, refused))
    with pytest.raises(NetlinkError) as caught:
        channel.batch([begin, deletion, deletion, end], "delete a chain")
    assert caught.value.errno == errno.ENOENT
