"""Debian packages of another architecture, fetched into a cache and unpacked into a directory.

An arm64 image is assembled on an amd64 machine from Debian's arm64
packages.  The machine's own package state is never touched: apt runs with
a private state, cache, source list and (empty) dpkg status under the cache
directory, for that architecture only -- no `dpkg --add-architecture`, no
package installed.  Its sources are the Debian archives the machine's apt
already uses (`apt-get indextargets`), with the machine's keys and proxy
settings, so the packages are checked against Debian's signatures as any
package of the machine is.

A fetch resolves the packages with their dependencies, downloads them and
records the selection -- each file's name and SHA-256 -- in the cache.  Later
builds take the recorded files and need no network; `refresh` resolves again
(for Debian's security updates).  Nothing is run from the packages:
`dpkg-deb -x` only unpacks them, no maintainer script runs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from runtime.files import locked, write_atomically

SELECTION = "selection.json"
FETCH_WAIT = 900.0
"""Seconds a build waits for another one fetching into the same cache."""


class DebianError(Exception):
    """Packages could not be fetched or unpacked; the message says what apt or dpkg said."""


def fetch(
    packages: Sequence[str], architecture: str, cache: Path, *, refresh: bool = False
) -> list[Path]:
    """The .deb files of `packages` and their dependencies for `architecture`.

    From the cache when it holds this selection intact; otherwise resolved
    and downloaded by apt (this needs Debian's archive to be reachable).
    """
    directory = cache.absolute() / architecture  # apt reads relative paths from its own
    with locked(str(directory / "lock"), wait=FETCH_WAIT):
        if not refresh:
            cached = _cached(directory, packages)
            if cached is not None:
                return cached
        return _download(directory, packages, architecture)


def _cached(directory: Path, packages: Sequence[str]) -> list[Path] | None:
    """The recorded selection of exactly `packages`, if every file is there unchanged."""
    try:
        selection = json.loads((directory / SELECTION).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(selection, dict) or selection.get("packages") != list(packages):
        return None
    files = selection.get("files")
    if not isinstance(files, dict):
        return None
    debs = [directory / "debs" / Path(str(name)).name for name in files]
    if not all(
        deb.is_file() and _sha256(deb) == digest
        for deb, digest in zip(debs, files.values(), strict=True)
    ):
        return None
    return debs


def _download(directory: Path, packages: Sequence[str], architecture: str) -> list[Path]:
    """Resolve with apt from the machine's Debian sources, download, record the selection."""
    apt = _private_apt(directory, architecture)
    _apt(apt, "update", "--error-on=any")  # else an archive out of reach is only a warning
    for stale in (directory / "debs").glob("*.deb"):  # or --print-uris leaves them out
        stale.unlink()
    install = ["install", "--no-install-recommends", "-qq", *packages]
    listing = _apt(apt, *install, "--print-uris")
    wanted = dict(_file_and_hash(line) for line in listing.splitlines() if line.strip())
    _apt(apt, *install, "--download-only", "--yes")
    debs = [directory / "debs" / name for name in wanted]
    for deb in debs:
        if not deb.is_file() or _sha256(deb) != wanted[deb.name]:
            raise DebianError(f"apt did not leave {deb.name} as its index describes it")
    selection = {"packages": list(packages), "files": wanted}
    write_atomically(
        str(directory / SELECTION),
        json.dumps(selection, indent=1).encode(),
        durable=False,
        mode=0o644,
    )
    return debs


def _private_apt(directory: Path, architecture: str) -> list[str]:
    """Options for an apt with a state of its own under `directory`, for `architecture` alone."""
    state, debs, etc = directory / "state", directory / "debs", directory / "etc"
    for path in (
        state / "lists" / "partial",
        debs / "partial",
        etc / "sources.list.d",
        etc / "preferences.d",
    ):
        path.mkdir(parents=True, exist_ok=True)
    (state / "status").touch()
    (etc / "sources.list").write_text(_debian_sources(architecture))
    options = {
        "Dir::State": state,
        "Dir::State::status": state / "status",
        "Dir::Cache": directory / "cache",
        "Dir::Cache::archives": debs,
        "Dir::Etc::sourcelist": etc / "sources.list",
        "Dir::Etc::sourceparts": etc / "sources.list.d",
        "Dir::Etc::preferences": etc / "preferences",
        "Dir::Etc::preferencesparts": etc / "preferences.d",
        "APT::Architecture": architecture,
        "APT::Architectures": architecture,
        "Acquire::Languages": "none",
        "Acquire::ForceHash": "SHA256",
    }
    return [item for key, value in options.items() for item in ("-o", f"{key}={value}")]


def _debian_sources(architecture: str) -> str:
    """A sources.list of the Debian archives (suites, components) the machine's apt uses."""
    listing = subprocess.run(
        [
            "apt-get",
            "indextargets",
            "--format",
            "$(ORIGIN)\t$(REPO_URI)\t$(RELEASE)\t$(COMPONENT)",
            "Identifier: Packages",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    entries: dict[tuple[str, str], set[str]] = {}
    for line in listing.stdout.splitlines():
        origin, uri, suite, component = [*line.split("\t"), "", "", ""][:4]
        if origin == "Debian" and uri and suite and component:
            entries.setdefault((uri, suite), set()).add(component)
    if not entries:
        raise DebianError(
            "the machine's apt knows no Debian archive (apt-get indextargets "
            "lists none: run apt-get update, or add Debian's sources)"
        )
    return "".join(
        f"deb [arch={architecture}] {uri} {suite} {' '.join(sorted(components))}\n"
        for (uri, suite), components in sorted(entries.items())
    )


def _apt(options: list[str], *arguments: str) -> str:
    """Run apt-get with the private options; its output, or DebianError with its errors."""
    done = subprocess.run(
        ["apt-get", *options, *arguments],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise DebianError(
            f"apt-get {arguments[0]} failed (is Debian's archive reachable?):\n"
            + (done.stderr.strip() or done.stdout.strip())
        )
    return done.stdout


def _file_and_hash(line: str) -> tuple[str, str]:
    """(file name, SHA-256) of one line of `apt-get --print-uris`: 'URI' NAME SIZE SHA256:HEX."""
    fields = line.split()
    if len(fields) != 4 or not fields[3].startswith("SHA256:") or "/" in fields[1]:
        raise DebianError(f"apt-get --print-uris printed an unexpected line: {line!r}")
    return fields[1], fields[3].removeprefix("SHA256:")


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def unpack(debs: Sequence[Path], root: Path) -> Path:
    """Unpack the packages' files into `root` (`dpkg-deb -x`: no scripts run)."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        done = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise DebianError(f"dpkg-deb -x {deb.name} failed: {done.stderr.strip()}")
    return root
