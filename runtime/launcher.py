"""netc-cni's Python launcher: the text `netc install-plugin` and the artifact run first.

Standard library only, and Python 3.9 (so its annotations are strings, with
no `__future__` import to pay for): it answers VERSION importing nothing but
os and sys, hands the call to `netc serve-cni` when one runs (the protocol is
runtime/cni/server.py's), else runs the plugin itself (cold).

runtime/install.py writes this module's text after a `#!` line, with the
block of settings filled in: the directory of netc's packages, the socket,
the CNI versions and the protocol's constants, taken from the modules that
own them.  In the source the settings hold neutral values, so that linters
and type checkers read the launcher as the module it is.
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy reads this; the launcher imports nothing it does not need
    from _socket import socket
    from importlib.machinery import ModuleSpec
    from types import CodeType, ModuleType

TRAILER = 16
"""The artifact's last bytes: where its table of modules starts and its length (8 each)."""

# settings: written by runtime/install.py
ROOT: "str | int | None" = None
SOCKET: "str | None" = None
VERSIONS: "list[str]" = []
DEFAULT_VERSION = ""
OLDEST = (3, 10)
UNSUITABLE = 0
IDENTITY = b""
MAGIC = b""
PROTOCOL = 0
READY = 0
STARTED = 0
NOT_ME = 0
GO = 0
HANDOVER_TIMEOUT = 0.0
STATUS_TIMEOUT = 0.0
# end of settings


def answer_version() -> None:
    """What the plugin answers, from a glance at stdin's "cniVersion" (no json import)."""
    data = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    stated = DEFAULT_VERSION
    key = data.find(b'"cniVersion"')
    if key >= 0:
        start = data.find(b'"', data.find(b":", key) + 1) + 1
        end = data.find(b'"', start)
        found = data[start:end].decode("ascii", "replace") if 0 < start <= end else ""
        if found and found.replace(".", "").isdigit():
            stated = found
    listed = ", ".join('"' + v + '"' for v in VERSIONS)
    sys.stdout.write('{"cniVersion": "' + stated + '", "supportedVersions": [' + listed + "]}\n")


def leave(status: int) -> None:
    """Flush and exit without the interpreter's teardown, which a plugin call does not need.

    Everything written is flushed and no file is left open for writing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def cold() -> None:
    """Run the plugin in this process.

    netc's packages come from ROOT: a directory, or the descriptor of the
    artifact that holds them (None: they are importable already).
    """
    if sys.version_info < OLDEST:
        found = ".".join(map(str, sys.version_info[:3]))
        wanted = ".".join(map(str, OLDEST))
        sys.stdout.write(
            '{"cniVersion": "'
            + DEFAULT_VERSION
            + '", "code": '
            + str(UNSUITABLE)
            + ', "msg": "netc-cni needs Python '
            + wanted
            + " or later on the node, "
            "found " + found + " (" + sys.executable + ')"}\n'
        )
        leave(1)
    if isinstance(ROOT, int):
        sys.meta_path.insert(0, Archive(ROOT))
    elif ROOT is not None:
        sys.path.append(ROOT)
    from runtime.cni.plugin import entry

    entry()


class Archive:
    """netc's modules, read from the artifact (runtime/artifact.py) through a descriptor.

    The artifact ends with a table naming each module's source and byte code.
    The byte code serves when this interpreter's magic number is the builder's;
    otherwise the source is compiled.  A module costs one read and one
    unmarshalling, where Python's zip import opened the file again and read
    headers for each one (docs/benchmarks.md).  It finds netc's modules only,
    so it goes first on sys.meta_path without hiding any other.
    """

    def __init__(self, descriptor: int) -> None:
        import marshal
        from importlib._bootstrap_external import MAGIC_NUMBER  # importlib.util's, cheaper

        end = os.fstat(descriptor).st_size
        trailer = os.pread(descriptor, TRAILER, end - TRAILER)
        start, length = int.from_bytes(trailer[:8], "big"), int.from_bytes(trailer[8:], "big")
        magic, self.modules = marshal.loads(os.pread(descriptor, length, start))
        self.compiled = magic == MAGIC_NUMBER
        self.descriptor = descriptor

    def find_spec(
        self, name: str, path: object = None, target: object = None
    ) -> "ModuleSpec | None":
        """A spec for netc's module `name`, None for any other (the next finder's)."""
        if name not in self.modules:
            return None
        from importlib.machinery import ModuleSpec

        file, package = self.modules[name][:2]
        # a loader is what has exec_module (PEP 451); importlib.abc's base costs imports
        spec = ModuleSpec(name, self, origin=file, is_package=package)  # type: ignore[arg-type]
        spec.has_location = True  # __file__, for what names the module's place
        return spec

    def create_module(self, spec: "ModuleSpec") -> None:
        """None: Python creates the module as usual."""
        return None

    def exec_module(self, module: "ModuleType") -> None:
        """Run the module's code in it: what importing it means."""
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, name: str) -> "CodeType":
        """The module's byte code: the builder's when this Python reads it, else compiled."""
        file, _, source_at, source_length, code_at, code_length = self.modules[name]
        if self.compiled:
            import marshal

            code: CodeType = marshal.loads(os.pread(self.descriptor, code_length, code_at))
            return code
        source = os.pread(self.descriptor, source_length, source_at)
        return compile(source, file, "exec", dont_inherit=True)

    def get_source(self, name: str) -> str:
        """For tracebacks (linecache asks the loader)."""
        _, _, source_at, source_length = self.modules[name][:4]
        return os.pread(self.descriptor, source_length, source_at).decode()


def warm(path: str) -> None:
    """Offer the call to the server at `path`; run it here if no server of this netc takes it.

    `_socket` and `_struct`, not their wrappers: the hand-over needs nothing more.
    """
    from _socket import AF_UNIX, SOCK_STREAM, socket

    server = socket(AF_UNIX, SOCK_STREAM)
    try:
        taken = offer(server, path)
    except OSError:
        taken = False
    status = outcome(server) if taken else None
    if status is None:
        server.close()
        cold()
    else:
        leave(status)


def offer(server: "socket", path: str) -> bool:
    """True once GO and our descriptors are sent.

    Until then we may give up and run the call here: the server has run
    nothing, and holds none of our streams.
    """
    from _socket import SCM_RIGHTS, SO_PEERCRED, SOL_SOCKET
    from _struct import pack, unpack

    environment = b"\0".join(key + b"=" + value for key, value in os.environb.items())
    payload = IDENTITY + b"\0" + environment
    server.settimeout(HANDOVER_TIMEOUT)
    server.connect(path)
    if unpack("3i", server.getsockopt(SOL_SOCKET, SO_PEERCRED, 12))[1] != 0:
        return False  # not root: whoever it is gets neither the call nor our stdout
    server.sendall(MAGIC + pack(">B", PROTOCOL) + pack(">I", len(payload)) + payload)
    if server.recv(1) != bytes([READY]):  # NOT_ME: another netc, or a hand-over it refused
        return False
    namespaces = [os.open("/proc/self/ns/" + kind, os.O_RDONLY) for kind in ("net", "mnt")]
    server.sendmsg([bytes([GO])], [(SOL_SOCKET, SCM_RIGHTS, pack("5i", 0, 1, 2, *namespaces))])
    return True


def receive(server: "socket") -> bytes:
    """One byte of the server's answer; nothing when the connection failed."""
    try:
        return server.recv(1)
    except OSError:
        return b""


def outcome(server: "socket") -> "int | None":
    """The call's exit status; None when the server ran nothing after all."""
    server.settimeout(STATUS_TIMEOUT)
    answer = receive(server)
    if answer in (b"", bytes([NOT_ME])):  # it ended or refused before starting the plugin
        return None
    status = receive(server) if answer == bytes([STARTED]) else b""
    if status:
        return status[0]
    import json

    message = "the warm server's process for this call ended without an exit status"
    print(
        json.dumps(
            {
                "cniVersion": DEFAULT_VERSION,
                "code": 11,
                "msg": message,
                "details": "try again later",
            }
        )
    )
    return 1


if __name__ == "__main__":
    if os.environb.get(b"CNI_COMMAND") == b"VERSION":
        answer_version()
        leave(0)
    if SOCKET is None:
        cold()
    else:
        warm(SOCKET)
