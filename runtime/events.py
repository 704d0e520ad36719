"""The agent's log: one line per event on stderr, as text or as JSON (`netc agent --log-format`).

Text is for people reading `kubectl logs`:

    netc agent: applied + route to node-c's pods 10.244.3.0/24 via 198.18.10.13 (direct)

JSON is for log pipelines: one object per line, with the time (UTC, RFC
3339), the event, its detail -- the text line's sentence -- and the node,
and where known the network and the file:

    {"time": "2026-03-01T12:00:00.123Z", "event": "applied", "detail": "applied + route ...",
     "node": "node-a"}

Every change the agent makes to the node is an event of its own
(`CHANGES`); the other events say what it found or became.  The warm
server's lines, relayed, are events `warm server` in JSON.  Each line is
written straight to the descriptor, in one write, so the lines of the
agent's threads and of its warm server's relay never interleave.
"""

from __future__ import annotations

import datetime
import json
import os

FORMATS = ("text", "json")
CHANGES = ("installed", "applied", "wrote", "removed stale")
"""The events that are changes the agent made to the node."""

_settings: dict[str, str] = {"format": "text"}


def use_format(log_format: str, node: str | None = None) -> None:
    """Log in `log_format` from now on, naming `node` in every JSON event."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}, not one of {', '.join(FORMATS)}")
    _settings.clear()
    _settings["format"] = log_format
    if node is not None:
        _settings["node"] = node


def log(message: str, event: str, *, trace: str = "", **fields: str) -> None:
    """One event: `netc agent: MESSAGE` (and `trace` after it), or one JSON object.

    `fields` (network, path) and `trace` (a traceback) go into the object.
    """
    if _settings["format"] == "json":
        record = {"time": _now(), "event": event, "detail": message, **_node(), **fields}
        if trace:
            record["traceback"] = trace
        text = json.dumps(record, ensure_ascii=False) + "\n"
    else:
        text = f"netc agent: {message}\n{trace}"
    os.write(2, text.encode(errors="replace"))


def relay(line: bytes) -> None:
    """A line of the warm server's log: as it is, or as a `warm server` event."""
    if _settings["format"] == "json":
        log(line.decode(errors="replace").rstrip("\n"), "warm server")
    else:
        os.write(2, line)


def _node() -> dict[str, str]:
    return {"node": _settings["node"]} if "node" in _settings else {}


def _now() -> str:
    moment = datetime.datetime.now(datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
