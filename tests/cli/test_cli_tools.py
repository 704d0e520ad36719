"""Editor and CI integration: `netc fmt -`, `netc check -`, `--format github`."""

from click.testing import CliRunner

from runtime.cli import main

UGLY = "network x { bridge {gateway}\n ipam { subnet 10.1.0.0/24 }}\n"
BAD = "network x {\n    bridge { mtu 99 }\n    ipam { subnet 10.1.0.0/24 }\n}\n"


def netc(*args: str, stdin: str = ""):
    return CliRunner().invoke(main, list(args), input=stdin)


def test_fmt_dash_formats_stdin_to_stdout():
    result = netc("fmt", "-", stdin=UGLY)
    assert result.exit_code == 0
    assert result.output.startswith("network x {\n    bridge {\n        gateway\n")
    assert netc("fmt", "-", stdin=result.output).output == result.output


def test_check_dash_reads_stdin():
    assert netc("check", "-", stdin=UGLY).exit_code == 0
    assert netc("check", "-", stdin=BAD).exit_code == 1


def test_github_format_annotates_the_faulty_line():
    result = netc("check", "--format", "github", "-", stdin=BAD)
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith("::error file=<stdin>,line=2,col=18,endLine=2,endColumn=20,")
    assert "title=E013::99 is outside 576..65535%0Aexpected: an MTU" in line
