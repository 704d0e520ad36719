"""The installed wheel carries everything netc needs at run time, the grammar included."""

import subprocess
import sys
import zipfile

from tests.support import ROOT


def test_the_wheel_carries_the_grammar_and_both_console_scripts(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("netc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "grammar/netdsl.lark" in names
    assert {"compiler/ir.py", "runtime/cni/plugin.py", "runtime/netlink/tc.py"} <= set(names)
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "netc = compiler.cli:main" in entry_points
    assert "netc-cni = runtime.cni.plugin:entry" in entry_points
