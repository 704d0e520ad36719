"""A podman 4.3 (CNI backend) confined to a test: its own configuration, storage and node.

CONTAINERS_CONF and CONTAINERS_STORAGE_CONF point at files written here, so
podman takes neither its settings nor its storage from /etc/containers and
keeps its images and containers in a directory of its own.  That directory
is a short one in /tmp, not the test's: podman refuses a --runroot longer
than 50 characters, and the `podman container cleanup` that conmon runs when
a container exits gets the runroot as that flag.  Below pytest's long tmp
paths it fails ("the specified runroot is longer than 50 characters") and
the CNI DEL of an exited container never happens.  The settings follow
real-clients.md:

* runtime runc: crun 1.8 fails on this host's hybrid cgroups;
* cgroupfs with a per-test --cgroup-parent: no systemd, and our cgroups are
  then easy to find and remove;
* default_ulimits: rootful podman asks for nofile=1048576, above the hard
  limit here, and without CAP_SYS_RESOURCE that fails;
* conmon_env_vars: when a container exits, conmon starts `podman container
  cleanup`, which runs the CNI DEL, with only these variables plus the few
  podman forwards itself (CONTAINERS_CONF, HOME, TMPDIR, LC_CTYPE; not
  CONTAINERS_STORAGE_CONF: the storage paths come as flags).  This PATH is
  the one a node has there, so netc-cni meets the environment of a real
  cleanup.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.runtimes.host import NODE_PATH, CgroupTree, in_netns, unmount_below


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


class Podman:
    """podman commands run in the node namespace with test-private configuration."""

    def __init__(
        self, node: str, conf_dir: Path, plugin_dirs: list[str], cgroups: CgroupTree
    ) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="netc-podman-"))
        self.node = node
        self.cgroups = cgroups
        self.environment = {
            "PATH": NODE_PATH,
            "CONTAINERS_CONF": str(self.work / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.work / "storage.conf"),
        }
        self._write_config(conf_dir, plugin_dirs)

    def _write_config(self, conf_dir: Path, plugin_dirs: list[str]) -> None:
        (self.work / "containers.conf").write_text(f"""\
[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[network]
network_backend = "cni"
cni_plugin_dirs = {_toml_list(plugin_dirs)}
network_config_dir = "{conf_dir}"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{self.work}/events.log"
runtime = "runc"
tmp_dir = "{self.work}/libpod-tmp"
conmon_env_vars = ["PATH={NODE_PATH}"]
""")
        (self.work / "storage.conf").write_text(f"""\
[storage]
driver = "overlay"
graphroot = "{self.work}/graph"
runroot = "{self.work}/run"
""")

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """`podman ARGS` inside the node; a failure shows podman's stderr."""
        done = subprocess.run(
            [*in_netns(self.node), "podman", *args],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
            )
        return done

    def run(self, name: str, image: str, *options: str) -> str:
        """`podman run -d` in our cgroup parent; the container's full ID."""
        done = self(
            "run",
            "-d",
            "--pull",
            "never",
            "--name",
            name,
            "--cgroup-parent",
            self.cgroups.parent,
            *options,
            image,
        )
        return done.stdout.strip()

    def inspect(self, container: str) -> dict[str, Any]:
        """`podman inspect` of one container."""
        (document,) = json.loads(self("inspect", container).stdout)
        return document

    def close(self) -> None:
        """Remove every container of this podman, its mounts, storage and cgroups."""
        self("rm", "--force", "--all", "--time", "0", check=False)
        unmount_below(self.work)
        self.cgroups.remove()
        shutil.rmtree(self.work, ignore_errors=True)
