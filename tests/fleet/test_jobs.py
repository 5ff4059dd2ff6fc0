"""The job model: how a job's state follows from its record, its step and SLURM; the job's
command line; SLURM's ``Key=Value`` output. No SLURM needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_cryobench.fleet.jobs import (
    NOT_SUBMITTED,
    UNKNOWN,
    FleetError,
    JobRecord,
    read_json_file,
    resolve_state,
    settled,
)
from pytest_cryobench.fleet.slurm import parse_fields, unavailable_reason
from pytest_cryobench.fleet.step import run_step
from pytest_cryobench.fleet.submit import FleetRequest, check_request, job_command, progress_class, sbatch_options


def job(**kw):
    base = dict(node="n1", job_id="7", state="PENDING", stdout="/o/n1/job-7.out", stderr="/o/n1/job-7.err")
    return JobRecord(**{**base, **kw})


def test_the_steps_own_end_wins_over_a_slurm_that_has_not_noticed():
    new = resolve_state(job(), {"started_at": 1.0, "ended_at": 5.0, "exit_code": 0}, ("RUNNING", "None"))
    assert (new.state, new.exit_code, new.started_at, new.ended_at, new.reason) == ("COMPLETED", 0, 1.0, 5.0, None)


def test_a_failed_step_names_its_stderr():
    new = resolve_state(job(), {"started_at": 1.0, "ended_at": 2.0, "exit_code": 4}, None)
    assert new.state == "FAILED" and new.exit_code == 4
    assert "/o/n1/job-7.err" in new.reason


def test_slurm_ending_the_step_is_said_as_such():
    new = resolve_state(job(), {"started_at": 1.0, "ended_at": 9.0, "exit_code": 143}, ("TIMEOUT", "TimeLimit"))
    assert new.state == "TIMEOUT" and "timeout" in new.reason


def test_a_job_slurm_ended_before_its_step_ran_is_failed():
    new = resolve_state(job(), None, ("FAILED", "NonZeroExitCode"))
    assert new.state == "FAILED" and "before its command finished" in new.reason


def test_live_states_come_from_slurm_and_a_down_node_settles_a_pending_job():
    running = resolve_state(job(), {"started_at": 3.0}, ("RUNNING", "None"))
    assert running.state == "RUNNING" and running.reason is None and not settled(running)
    waiting = resolve_state(job(), None, ("PENDING", "Priority"))
    assert waiting.reason == "Priority" and not settled(waiting)
    stuck = resolve_state(job(), None, ("PENDING", "ReqNodeNotAvail"), node_down="down: test")
    assert stuck.reason == "node n1 is down: test" and settled(stuck)
    assert progress_class(stuck) == "could not run"


def test_a_job_slurm_forgot_without_an_end_is_unknown():
    new = resolve_state(job(state="RUNNING"), {"started_at": 3.0}, None)
    assert new.state == UNKNOWN and "no end record" in new.reason and settled(new)
    done = job(state="COMPLETED", exit_code=0)
    assert resolve_state(done, None, None) == done


def test_not_submitted_stays_so():
    record = job(job_id=None, state=NOT_SUBMITTED, reason="node n1 is drain: fan")
    assert resolve_state(record, None, None) == record and settled(record)


def test_pytest_exit_status_1_is_done_with_failed_cases():
    assert progress_class(job(state="FAILED", exit_code=1)) == "done"
    assert progress_class(job(state="FAILED", exit_code=4)) == "could not run"


def test_parse_fields_keeps_values_with_spaces():
    line = ("NodeName=n3 Arch=x86_64 CoresPerSocket=1 State=DOWN+DRAIN ThreadsPerCore=1 "
            "Reason=fan broken [root@2026-12-01T10:00:00]")
    fields = parse_fields(line)
    assert fields["State"] == "DOWN+DRAIN"
    assert fields["Reason"] == "fan broken [root@2026-12-01T10:00:00]"
    assert unavailable_reason(fields) == "down+drain: fan broken [root@2026-12-01T10:00:00]"
    assert unavailable_reason({"State": "IDLE"}) is None
    assert unavailable_reason({"State": "MIXED+DRAIN", "Reason": "(null)"}) == "drain"
    assert unavailable_reason({"State": "IDLE*"}) is None  # '*' alone: not responding shows as its own flag


def test_the_job_runs_wrap_then_this_python_with_the_output_per_node(tmp_path):
    request = FleetRequest("gpu", tmp_path, ["--cryobench-profile=smoke", "-m", "fs or gpu"],
                           wrap="apptainer exec 'my image.sif'", gres="gpu:4", time_limit="01:00:00", serial=True)
    argv = job_command(request, tmp_path / "n07")
    assert argv[:5] == [sys.executable, "-m", "pytest_cryobench.fleet.step", str(tmp_path / "n07"), "--"]
    assert argv[5:] == ["apptainer", "exec", "my image.sif", sys.executable, "-m", "pytest", "--cryobench",
                        "--cryobench-profile=smoke", "-m", "fs or gpu", f"--cryobench-output={tmp_path / 'n07'}"]
    options = sbatch_options(request, "n07", "cb", Path("o"), Path("e"))
    for pair in (["--nodelist", "n07"], ["--gres", "gpu:4"], ["--time", "01:00:00"], ["--dependency", "singleton"]):
        at = options.index(pair[0])
        assert options[at:at + 2] == pair
    assert "--exclusive" in options


def test_the_fleet_sets_the_output_itself_and_never_reuses_a_directory(tmp_path):
    with pytest.raises(FleetError, match="set by the fleet"):
        check_request(FleetRequest("ci", tmp_path, ["--cryobench-output=/x"]))
    (tmp_path / "fleet.json").write_text("{}")
    with pytest.raises(FleetError, match="already holds a fleet run"):
        check_request(FleetRequest("ci", tmp_path, []))


def test_the_step_records_start_end_and_exit_status(tmp_path):
    code = run_step(tmp_path, [sys.executable, "-c", "import sys; sys.exit(3)"])
    step = read_json_file(tmp_path / "step.json")
    assert code == 3 and step["exit_code"] == 3
    assert step["started_at"] <= step["ended_at"]
    assert run_step(tmp_path, [str(tmp_path / "no-such-program")]) == 127
