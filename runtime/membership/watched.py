"""What the sources that list and watch a datastore share: members, condition, outages.

etcd and the Kubernetes API are followed the same way: list the members at
a version, watch the changes from there, list again when the version is
gone (compacted) and wait out a datastore that does not answer.  A listing
replaces what was known; while the datastore is away the last members stay
(nothing is removed) and the condition says why.  `Watched` keeps that
state and runs that loop; a source says how to do one round (`_round`) and
which of its client's errors mean what (`AGAIN`, `UNAVAILABLE`, `REFUSED`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping

from compiler.membership import Member, Members
from runtime import events
from runtime.membership import View

RETRY_MIN = 0.1
RETRY_MAX = 5.0
"""The longest wait before asking an unavailable datastore again."""


def jittered(seconds: float) -> float:
    """A wait of between half `seconds` and `seconds`, drawn at random.

    Every node loses its datastore at the same moment (a leader election, a
    restart); waits without jitter would bring them all back in the same
    instant, again and again, and a datastore short of CPU loses its leader
    anew under that herd.
    """
    return random.uniform(seconds / 2, seconds)


class Watched:
    """A source's members as last listed and watched, and what keeps it from answering."""

    SOURCE = ""
    """How views and `netc status` name the source."""
    TITLE = ""
    """How the log and conditions name the datastore."""
    AGAIN: tuple[type[Exception], ...] = ()
    """Errors that mean: list again at once (a watch whose version was compacted)."""
    UNAVAILABLE: tuple[type[Exception], ...] = ()
    """Errors that mean: the datastore cannot answer now; keep the members, wait."""
    REFUSED: tuple[type[Exception], ...] = ()
    """Errors that mean: the datastore answered no; the condition says its reason."""

    def __init__(self, changed: threading.Event | None, condition: str) -> None:
        self.changed = changed or threading.Event()
        self.ttl: int | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._members: dict[str, Member] = {}
        self._gone_at: dict[str, float] = {}
        """When members still kept were last present (wall clock)."""
        self._revision = 0
        self._listed = False
        self._me: Member | None = None
        self._lease: int | None = None
        self._condition = condition
        self._unavailable = False
        self._healthy_at = 0.0
        self._retry = RETRY_MIN

    def stop(self) -> None:
        """Stop following; what the node published stays for its next agent."""
        self._stopping.set()

    def view(self) -> View:
        """The members as last known, this node's, and what is wrong if anything."""
        with self._lock:
            members = Members.of(self._revision, self._members.values()) if self._listed else None
            healthy = self._healthy_at if self._unavailable else time.time()
            seen = {name: self._gone_at.get(name, healthy) for name in self._members}
            return View(
                self.SOURCE, members, self._me, self._condition, self._lease, self.ttl, seen
            )

    # the loop

    def _follow(self) -> None:
        """Rounds until stopped: each lists and watches; failures are waited out."""
        while not self._stopping.is_set():
            try:
                self._round()
                continue
            except self.AGAIN:
                continue
            except self.UNAVAILABLE as error:
                self._unavailable_now(str(error))
            except self.REFUSED as error:
                self._set_condition(str(error))
            except Exception as error:  # a defect: said, and tried again; never a silent end
                self._set_condition(f"internal error following {self.TITLE}: {error!r}")
            self._stopping.wait(jittered(self._retry))
            self._retry = min(self._retry * 2, RETRY_MAX)

    def _round(self) -> None:
        """List the members and follow their changes, until something needs a new round."""
        raise NotImplementedError

    # the members

    def _replace(self, listed: Mapping[str, Member], revision: int) -> None:
        """A fresh listing: what it lacks is gone, what it has is current."""
        with self._lock:
            self._available()
            for name in set(self._members) - set(listed):
                self._gone(name)
            for member in listed.values():
                self._present(member)
            self._revision, self._listed = revision, True
            self._listing_done(listed)
        self.changed.set()

    def _listing_done(self, listed: Mapping[str, Member]) -> None:
        """What a source checks once a listing replaced the members (the lock held)."""

    def _present(self, member: Member) -> None:
        self._members[member.name] = member
        self._gone_at.pop(member.name, None)

    def _gone(self, name: str) -> None:
        """A member left the datastore: dropped (the lock held)."""
        self._members.pop(name, None)
        self._gone_at.pop(name, None)

    # the datastore's health

    def _available(self) -> None:
        """The datastore answered (the lock held): the outage, if any, is over."""
        if self._unavailable:
            self._unavailable = False
            self._back()
            log(f"{self.TITLE} answers again")
        self._retry = RETRY_MIN
        self._healthy_at = time.time()
        self._condition = self._standing_condition()

    def _back(self) -> None:
        """What a source does when its datastore answers after an outage (the lock held)."""

    def _standing_condition(self) -> str:
        """The condition once the datastore answers: what is still wrong ("" nothing)."""
        return ""

    def _unavailable_now(self, reason: str) -> None:
        with self._lock:
            if not self._unavailable:
                log(f"{self.TITLE} is unavailable, keeping the last members: {reason}")
                self._healthy_at = time.time()
            self._unavailable = True
            self._condition = f"{self.TITLE} is unavailable: {reason}"
        self.changed.set()

    def _set_condition(self, condition: str) -> None:
        with self._lock:
            changed = condition != self._condition
            self._condition = condition
        if changed:
            if condition:
                log(condition)
            self.changed.set()


def log(message: str) -> None:
    """One line of the agent's log about its membership."""
    events.log(f"membership: {message}", "membership")
