"""runtime.programs: a program's input, output, status and end, without subprocess."""

import os
import time

import pytest

from runtime import programs
from runtime.deadline import Overdue, deadline


def test_the_input_reaches_the_program_and_its_output_comes_back():
    assert programs.run("cat", stdin=b"*nat\nCOMMIT\n") == b"*nat\nCOMMIT\n"


def test_output_larger_than_a_pipe_buffer_cannot_block_the_program():
    data = os.urandom(3 << 20)
    assert programs.run("cat", stdin=data) == data


def test_a_failing_program_is_reported_with_its_own_words_unless_its_status_is_accepted():
    script = "echo 'line 1: no chain by that name' >&2; exit 3"
    with pytest.raises(programs.ProgramFailed, match="no chain by that name") as failure:
        programs.run("sh", "-c", script)
    assert failure.value.status == 3
    assert programs.run("sh", "-c", "echo kept; exit 3", accept=(0, 3)) == b"kept\n"


def test_a_program_ended_by_a_signal_has_a_negative_status():
    with pytest.raises(programs.ProgramFailed) as failure:
        programs.run("sh", "-c", "kill -TERM $$")
    assert failure.value.status == -15


def test_a_missing_program_is_named():
    with pytest.raises(programs.ProgramMissing, match="no-such-program-netc"):
        programs.run("no-such-program-netc")


def test_a_call_past_its_deadline_leaves_no_program_running(tmp_path):
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(Overdue), deadline(1):
        programs.run("sh", "-c", f"echo $$ > {pid_file}; exec sleep 30")
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_started_program_runs_beside_the_caller_until_it_is_waited_for(tmp_path):
    signal_file = tmp_path / "go"
    script = (
        f"i=0; while [ ! -e {signal_file} ] && [ $i -lt 1000 ]; do sleep 0.01; "
        f"i=$((i+1)); done; [ -e {signal_file} ] && echo seen"
    )
    running = programs.start("sh", "-c", script)
    signal_file.touch()  # only a caller that went on can do this while the program waits
    assert running.wait() == b"seen\n"
    assert running.streams == []


def test_a_started_program_that_fails_says_so_when_waited_for():
    running = programs.start("sh", "-c", "echo 'no such chain' >&2; exit 2")
    with pytest.raises(programs.ProgramFailed, match="no such chain"):
        running.wait()
