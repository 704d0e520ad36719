"""`netc plan` from the command line: formats, refusals, exit codes; and the plugin's imports."""

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from compiler.planner.ops import PLAN_FORMAT
from runtime.cli import main
from tests.support import ROOT

PODS = str(ROOT / "examples" / "pods.netdsl")
MULTI = [str(p) for p in sorted((ROOT / "examples" / "multi").glob("*.netdsl"))]


def netc(*args: str):
    return CliRunner().invoke(main, list(args))


def test_text_plan_numbers_operations_and_ends_with_a_summary():
    result = netc("plan", PODS, "--port", "30080:80", "--bandwidth", "ingress=20M")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("netc plan: ADD of pod default/pod on network pods")
    assert any(line.startswith("    1 + record of attachment") for line in lines)
    assert any(line.startswith("Plan: ") for line in lines)
    assert "--dport 30080 -m comment --comment" in result.output and "-j DNAT" in result.output


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_machine_formats_carry_the_same_versioned_plan(output):
    result = netc("plan", PODS, "--format", output, "--command", "del")
    document = json.loads(result.output) if output == "json" else yaml.safe_load(result.output)
    assert document["format_version"] == PLAN_FORMAT
    assert document["command"] == "DEL"
    assert all(op["action"] == "remove" for op in document["operations"])


def test_a_refused_port_is_an_error_naming_the_rule():
    result = netc("plan", PODS, "--port", "22:22")
    assert result.exit_code == 1
    assert "deny 22" in result.output and "pods.netdsl:" in result.output


def test_files_compile_together_and_network_chooses_among_them():
    ambiguous = netc("plan", *MULTI)
    assert ambiguous.exit_code == 2
    assert "several networks (frontend, batch)" in ambiguous.output
    chosen = netc("plan", *MULTI, "--network", "batch")
    assert chosen.exit_code == 0
    assert "on network batch" in chosen.output


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--bogus",), 2),
        (("--bogus", "--detailed-exitcode"), 1),
        (("--port", "nonsense", "--detailed-exitcode"), 1),
        (("--port", "nonsense"), 2),
    ],
)
def test_usage_errors_exit_1_under_detailed_exitcode(args, code):
    assert netc("plan", PODS, *args).exit_code == code


def test_the_plugin_imports_neither_lark_nor_click_nor_pyroute2():
    probe = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import runtime.cni.plugin, "
        "runtime.cni.commands; "
        "print(sorted({'lark', 'click', 'pyroute2'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-IS", "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
