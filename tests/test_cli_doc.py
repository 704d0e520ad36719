"""docs/cli.md says what the command line does.

The synopsis at its top names every command, and for each exactly the
options the command has, with the choices they take; the output it shows of
a command that needs nothing but the repository's files is that command's
output (`...` stands for what the page leaves out).
"""

from __future__ import annotations

import re
import shlex

import click
import pytest
from click.testing import CliRunner

from compiler import ir_codec
from compiler.changes import CHANGES_FORMAT
from compiler.diagnostics import JSON_FORMAT_VERSION
from compiler.planner.ops import PLAN_FORMAT
from runtime.cli import COMMANDS, main
from runtime.cli.apply import APPLY_FORMAT
from runtime.cli.node import STATUS_FORMAT
from tests.support import ROOT

PAGE = (ROOT / "docs" / "cli.md").read_text()
PARENT = click.Context(main, info_name="netc")


def synopsis() -> dict[str, str]:
    """The synopsis block: each command's lines (all its forms, continuations), by name."""
    block = re.search(r"```\n(.*?)```", PAGE, re.S)
    assert block is not None
    entries: dict[str, str] = {}
    name = ""
    for line in block.group(1).splitlines():
        if line.startswith("netc "):
            name = line.split()[1]
        entries[name] = f"{entries.get(name, '')} {line.strip()}"
    return entries


def command(name: str) -> click.Command:
    found = main.get_command(PARENT, name)
    assert found is not None, name
    return found


def options(name: str) -> dict[str, click.Option]:
    """A command's long options (--help aside), by name."""
    return {
        opt: param
        for param in command(name).params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    }


def test_the_synopsis_names_every_command():
    assert sorted(synopsis()) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_synopsis_gives_each_option_of_a_command(name):
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", synopsis()[name]))
    assert shown == set(options(name)), (
        f"netc {name}: missing {sorted(set(options(name)) - shown)}, "
        f"no such option {sorted(shown - set(options(name)))}"
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_synopsis_gives_the_choices_of_an_option(name):
    line = synopsis()[name]
    for opt, param in options(name).items():
        if not isinstance(param.type, click.Choice):
            continue
        shown = {
            choice
            for found in re.findall(rf"{opt} ([A-Za-z0-9.|]+)", line)
            for choice in found.split("|")
        }
        assert shown == set(param.type.choices), (name, opt)


def examples() -> list[tuple[str, list[str]]]:
    """Blocks of the page that show `$ netc ...` and its output, run from the repository."""
    found = []
    for text in re.findall(r"```\n(\$ netc .*?)```", PAGE, re.S):
        first, *output = text.splitlines()
        words = shlex.split(first[2:].split("  #")[0])
        files = [w for w in words[2:] if w.endswith(".netdsl")]
        if files and all((ROOT / f).exists() for f in files) and "--against" not in words:
            found.append((first, output))
    return found


def _pattern(line: str) -> re.Pattern[str]:
    """A documented line as a pattern: `...` stands for anything."""
    return re.compile(".*".join(re.escape(part) for part in line.split("...")) + r"\Z")


@pytest.mark.parametrize(("shown", "output"), examples(), ids=lambda v: str(v)[:40])
def test_an_example_shows_the_commands_output(shown, output, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, shlex.split(shown[2:])[1:])
    actual = result.stdout.splitlines()
    position = 0
    for line in (line for line in output if line != "..."):
        pattern = _pattern(line)
        while position < len(actual) and not pattern.match(actual[position]):
            position += 1
        assert position < len(actual), f"not in the output, in this order: {line!r}"
        position += 1


@pytest.mark.parametrize(
    ("where", "pattern", "value"),
    [
        ("the conflist of --target netc", r'"netc": \{"format": (\d+)', str(ir_codec.FORMAT)),
        ("the plan", r"Format (\S+): iptables rules", PLAN_FORMAT),
        ("the diagnostics", r'\{"format_version": "(\S+)", "valid"', JSON_FORMAT_VERSION),
        ("the change plan", r"as a document \(`format_version` (\S+)\):", CHANGES_FORMAT),
        (
            "status",
            r"`--format json`\s+gives the same as a document \(`format_version` "
            r"([\d.]+)\)",
            STATUS_FORMAT,
        ),
        ("apply", r'\{"format_version": "(\S+)", "node"', APPLY_FORMAT),
    ],
)
def test_the_format_versions_the_page_gives_are_the_codes(where, pattern, value):
    found = re.findall(pattern, PAGE)
    assert found, f"the page does not give the format of {where}"
    assert set(found) == {value}, where
