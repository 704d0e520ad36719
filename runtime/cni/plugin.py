"""`netc-cni`: the CNI plugin executable.

A container runtime starts it once per call with CNI_* variables and the
network configuration on stdin; it answers on stdout (a result, or an error
object) and logs one line to stderr.  Start-up time is part of every pod's
creation, so this path imports neither lark nor click.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from compiler.datatypes import field, frozen
from compiler.errors import Code, NetcError
from compiler.versions import DEFAULT_CNI_VERSION
from runtime import spent
from runtime.cni.protocol import Call, error_reply, read_config, version_reply


@frozen
class Outcome:
    """What a call came to: its command and its CNI error code (0: it succeeded).

    `after_answer` is the work a DEL left for after its answer, when it was
    allowed to (`answer(answer_first=True)`); it raises as the DEL would have.
    """

    command: str
    code: int
    after_answer: Callable[[], None] | None = field(default=None, compare=False)

    @property
    def status(self) -> int:
        """The plugin's exit status."""
        return 0 if self.code == 0 else 1


def main() -> int:
    """Run one CNI call and return the exit status."""
    return answer().status


Answered = tuple[dict[str, Any] | None, Callable[[], None] | None]
"""A command's output (None: nothing to print) and what it left for after its answer."""


def answer(answer_first: bool = False) -> Outcome:
    """Run one CNI call, its answer written; what it came to (the warm server counts it).

    With `answer_first` (a warm server's call, whose process outlives its
    answer), a DEL may leave the deletion of the pod's devices for after
    the answer (`Outcome.after_answer`); see `runtime.executor.remove`.
    """
    started = time.monotonic()
    spent.reset()
    call = Call.from_environment(os.environ)
    data = sys.stdin.buffer.read() if call.command != "VERSION" or not sys.stdin.isatty() else b""
    version = _stated_version(data)
    try:
        output, rest = _dispatch(call, data, answer_first)
    except (NetcError, OSError) as error:
        failure = error if isinstance(error, NetcError) else _io_failure(error)
        _reply(error_reply(failure, version))
        _log(call, f"failed ({int(failure.code)}: {failure.message})", started)
        return Outcome(call.command, int(failure.code))
    except Exception as error:  # a bug: still answer in CNI's terms
        _reply(error_reply(NetcError(f"internal error: {error}", Code.INTERNAL), version))
        raise
    if output is not None:
        _reply(output)
    _log(
        call,
        "ok",
        started,
        "; the pod is cut off, its devices go after this answer" if rest else "",
    )
    return Outcome(call.command, 0, rest)


def _dispatch(call: Call, data: bytes, answer_first: bool) -> Answered:
    if call.command == "VERSION":
        return version_reply(_stated_version(data) or None), None
    if call.command not in ("ADD", "DEL", "CHECK", "STATUS", "GC"):
        raise NetcError(f"unknown CNI_COMMAND {call.command!r}", Code.BAD_ENVIRONMENT)
    # Runtimes ask every plugin for VERSION whenever they load a network: that
    # answer must not wait for the compiler's and the runtime's imports.
    from runtime.deadline import deadline

    with deadline():
        output, rest = _run(call, data, answer_first)
    return output, None if rest is None else lambda: _under_deadline(rest)


def _under_deadline(work: Callable[[], None]) -> None:
    from runtime.deadline import deadline

    with deadline():
        work()


def _run(call: Call, data: bytes, answer_first: bool) -> Answered:
    from runtime.cni import commands
    from runtime.cni.request import parse_request

    request = parse_request(data)
    if call.command == "STATUS":
        commands.status(request)
        return None, None
    if call.command == "GC":
        commands.garbage_collect(request)
        return None, None
    call.validate()
    if call.command == "ADD":
        return commands.add(call, request), None
    if call.command == "DEL":
        return None, commands.delete(call, request, answer_first)
    commands.check(call, request)
    return None, None


def _io_failure(error: OSError) -> NetcError:
    """A file the call needed could not be read or written (CNI code 5)."""
    where = f" {error.filename}" if error.filename else ""
    return NetcError(f"I/O failure on{where}: {error.strerror or error}", Code.IO_FAILURE)


def _stated_version(data: bytes) -> str:
    """The version to answer in; never an exception, which would leave the caller no answer."""
    try:
        version = read_config(data).get("cniVersion")
    except Exception:  # the call itself reports what is wrong with stdin
        return DEFAULT_CNI_VERSION
    return version if isinstance(version, str) and version else DEFAULT_CNI_VERSION


def _reply(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def _log(call: Call, outcome: str, started: float, more: str = "") -> None:
    who = f" {call.container_id[:12]}/{call.ifname}" if call.container_id else ""
    elapsed = (time.monotonic() - started) * 1000
    print(
        f"netc-cni: {call.command}{who}: {outcome} in {elapsed:.1f} ms ({spent.described()}){more}",
        file=sys.stderr,
    )


def entry() -> None:
    """Console-script entry point; the process ends without the interpreter's teardown.

    By the time `main` returns, the answer is written and every file the call
    changed was written through a descriptor and closed, so nothing is left
    for the teardown but freeing the plugin's modules (docs/benchmarks.md).
    """
    status = main()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


if __name__ == "__main__":
    entry()
