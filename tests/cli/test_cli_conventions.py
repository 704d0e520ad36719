"""The CLI as users of terraform, netplan and nmstatectl expect it.

Standard input for every compiling command and `<stdin>` in its diagnostics;
JSON on stdout for tools, errors included; one JSON document for several
networks; `fmt` that keeps links and modes; empty input refused; shell
completion of network names.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner, Result

from compiler.planner.ops import PLAN_FORMAT
from runtime.cli import main
from tests.conftest import TESTS
from tests.support import EXAMPLE_SETS, ROOT

PODS = "examples/pods.netdsl"
MULTI = EXAMPLE_SETS["multi"]
BAD = "network x {\n    bridge { mtu 99 }\n    ipam { subnet 10.1.0.0/24 }\n}\n"
UGLY = "network x { bridge {gateway}\n ipam { subnet 10.1.0.0/24 }}\n"
GOLDEN = TESTS / "golden" / "build"


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    monkeypatch.chdir(ROOT)


def netc(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, env=env, prog_name="netc")


def golden_conflist(example: str, name: str) -> dict:
    return json.loads((GOLDEN / example / "reference-source-default" / name).read_text())


@pytest.mark.parametrize("command", ["check", "build", "plan"])
def test_standard_input_is_named_stdin_in_diagnostics(command):
    result = netc(command, "-", stdin=BAD)
    assert result.exit_code == 1
    assert result.stderr.startswith("<stdin>:2:18: error[E013]: 99 is outside 576..65535")


def test_fmt_names_standard_input_stdin_too():
    result = netc("fmt", "-", stdin="network x {\n")
    assert result.exit_code == 1
    assert result.stderr.startswith("<stdin>:1:11: error[E003]: ")


def test_build_and_plan_read_standard_input():
    text = (ROOT / PODS).read_text()
    assert netc("build", "-", stdin=text).stdout == netc("build", PODS).stdout
    plan = netc("plan", "-", stdin=text)
    assert plan.exit_code == 0
    assert plan.stdout.startswith("netc plan: ADD of pod default/pod on network pods (<stdin>)")


def test_standard_input_can_be_given_once():
    result = netc("build", "-", "-", stdin=UGLY)
    assert result.exit_code == 2
    assert "`-` (standard input) can be given only once" in result.stderr


def test_several_networks_on_stdout_are_one_object_keyed_by_file_name():
    result = netc("build", *MULTI)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        name: golden_conflist("multi", name)
        for name in ("10-frontend.conflist", "20-batch.conflist")
    }


def test_build_json_is_one_document_with_diagnostics_and_conflists():
    result = netc("build", PODS, "--format", "json")
    assert result.exit_code == 0 and result.stderr == ""
    document = json.loads(result.stdout)
    assert (document["format_version"], document["valid"], document["warning_count"]) == (
        "1.0",
        True,
        2,
    )
    assert {d["code"] for d in document["diagnostics"]} == {"W001"}
    assert document["conflists"] == {
        "10-pods.conflist": golden_conflist("pods", "10-pods.conflist")
    }
    assert "files" not in document


def test_build_json_reports_errors_on_stdout():
    result = netc("build", "--format", "json", "-", stdin=BAD)
    assert result.exit_code == 1 and result.stderr == ""
    document = json.loads(result.stdout)
    assert (document["valid"], document["error_count"], document["conflists"]) == (False, 1, {})
    assert document["diagnostics"][0]["range"]["filename"] == "<stdin>"


def test_build_json_with_out_says_what_became_of_each_file(tmp_path):
    def build(*extra: str) -> tuple[int, dict]:
        result = netc("build", *MULTI, "--out", str(tmp_path), "--format", "json", *extra)
        return result.exit_code, json.loads(result.stdout)["files"]

    frontend, batch = str(tmp_path / "10-frontend.conflist"), str(tmp_path / "20-batch.conflist")
    assert build() == (0, {frontend: "written", batch: "written"})
    assert build() == (0, {frontend: "unchanged", batch: "unchanged"})
    os.unlink(batch)
    assert build("--check") == (1, {frontend: "up to date", batch: "would be created"})


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_a_refused_plan_is_a_document_on_stdout(output):
    result = netc("plan", PODS, "--port", "22:22", "--format", output)
    assert result.exit_code == 1 and result.stderr == ""
    document = (
        json.loads(result.stdout)
        if output == "json"
        else __import__("yaml").safe_load(result.stdout)
    )
    assert document["format_version"] == PLAN_FORMAT
    assert (document["command"], document["network"]) == ("ADD", "pods")
    refused = document["refused"]
    assert refused["message"].startswith("host port 22/tcp is refused by `deny 22`")
    assert (refused["cni_code"], refused["source"]["file"], refused["source"]["line"]) == (
        101,
        PODS,
        32,
    )


def test_plan_json_reports_compile_errors_on_stdout():
    result = netc("plan", "--format", "json", "-", stdin=BAD)
    assert result.exit_code == 1 and result.stderr == ""
    assert json.loads(result.stdout)["diagnostics"][0]["code"] == "E013"


def test_detailed_exitcode_without_live_is_a_usage_error():
    result = netc("plan", PODS, "--detailed-exitcode")
    assert result.exit_code == 1
    assert (
        "--detailed-exitcode reports pending changes, which only --live or --against "
        "find" in result.stderr
    )


def test_fmt_formats_the_target_of_a_link_and_keeps_the_mode(tmp_path):
    target = tmp_path / "real.netdsl"
    target.write_text(UGLY)
    target.chmod(0o640)
    link = tmp_path / "link.netdsl"
    link.symlink_to(target)
    result = netc("fmt", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == netc("fmt", "-", stdin=UGLY).stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.netdsl", "real.netdsl"]


def test_empty_input_is_an_error():
    result = netc("check", "-", stdin="")
    assert result.exit_code == 1
    assert result.stderr.startswith("<stdin>:1:1: error[E016]: the input has no statements")
    assert "0 networks valid" not in result.stderr


def test_an_empty_file_among_others_is_a_warning(tmp_path):
    empty = tmp_path / "empty.netdsl"
    empty.write_text("# nothing yet\n")
    result = netc("check", PODS, str(empty))
    assert result.exit_code == 0
    assert f"{empty}:1:1: warning[W002]: {empty} has no statements" in result.stderr


def test_templates_alone_build_nothing_with_a_warning():
    result = netc("build", "examples/multi/cluster.netdsl")
    assert result.exit_code == 0 and result.stdout == ""
    assert "warning[W003]: the input has no network: templates compile to nothing" in (
        result.stderr
    )


def complete(words: str) -> list[str]:
    """What bash completion offers after `words` (the last word being completed)."""
    parts = words.split(" ")
    result = netc(
        env={
            "_NETC_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
        }
    )
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


@pytest.mark.parametrize("command", ["build", "plan"])
def test_network_names_complete_from_the_files_typed(command):
    assert complete(f"netc {command} {' '.join(MULTI)} --network ") == ["frontend", "batch"]
    assert complete(f"netc {command} {' '.join(MULTI)} --network b") == ["batch"]
    assert complete(f"netc {command} --network ") == []


def test_completion_offers_subcommands():
    assert {"build", "import", "plan"} <= set(complete("netc "))
