"""What a new user meets first, run as a CI job would: output not on a terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_cryobench.measure import progress as progress_module
from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.text import outcome_notes

MAX_LINE = 300


def test_default_smoke_run_log_is_readable(tmp_path):
    """A whole default run with stdout and stderr captured as a CI job's log (no terminal)."""
    out = tmp_path / "out"
    log = subprocess.run(
        [sys.executable, "-m", "pytest", "--cryobench", "--cryobench-profile=smoke",
         f"--cryobench-data-dir={tmp_path / 'data'}", f"--cryobench-output={out}",
         f"--cryobench-project-dir={tmp_path}", "-p", "no:cacheprovider"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        timeout=600)
    text = log.stdout
    assert log.returncode in (0, 1), text[-3000:]
    lines = text.replace("\r", "\n").splitlines()
    longest = max(lines, key=len)
    print(f"longest line: {len(longest)} characters")
    assert len(longest) <= MAX_LINE, longest
    assert "Name (time in" not in text  # pytest-benchmark's own table only when asked
    assert "Traceback" not in text
    reasons = [line for line in lines if "could not run" in line and ":" in line and "cases" in line]
    if "could not run" in text:  # no GPU here: the GPU cases share one line and one fix
        assert len(reasons) == 1, reasons
    assert list(out.glob("*_fs_benchmark_data.json"))


def test_pytest_benchmark_table_when_asked(pytester, particle_args):
    args = [*particle_args, "-k", "sequential"]
    assert "Name (time in" not in pytester.runpytest(*args).stdout.str()
    assert "Name (time in" in pytester.runpytest(*args, "--cryobench-pytest-benchmark-table").stdout.str()
    assert "Name (time in" in pytester.runpytest(*args, "--benchmark-columns=min,max").stdout.str()


def test_progress_off_a_terminal_is_a_line_every_few_seconds(capsys, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    with progress_module.progress(None, "generating movies/tiff/x.tiff") as update:
        for done in range(1, 201):
            clock[0] += 0.1  # 20 s of work, an update every 0.1 s
            update(done, 200)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert "\r" not in err
    assert 4 <= len(lines) <= 6  # every 5 s, and the final line
    assert lines[-1].startswith("[cryobench] generating movies/tiff/x.tiff: 100% 200/200")
    assert max(map(len, lines)) < 120


def test_progress_labels_with_deep_paths_stay_short(capsys, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    with progress_module.progress(None, "writing 2000 particles to /" + "deep/" * 200) as update:
        clock[0] = 1.0
        update(1, 1)
    assert max(len(line) for line in capsys.readouterr().err.splitlines()) <= MAX_LINE


def _skipped(test, reason="no usable GPU: install CuPy"):
    return CaseRecord(group="gpu", test=test, nodeid=test, outcome="skipped", reason=reason)


def test_identical_reasons_are_one_line_naming_the_cases():
    records = [_skipped(f"fsc_{i}[gpu]") for i in range(20)]
    assert outcome_notes(records) == ["could not run (all 20 gpu cases):\n  no usable GPU: install CuPy"]
    passed = CaseRecord(group="gpu", test="fsc[cpu]", nodeid="x", outcome="passed")
    lines = outcome_notes([*records[:3], passed, _skipped("picking[gpu]", "other")])
    assert lines == ["could not run (3 cases: gpu/fsc_0[gpu], gpu/fsc_1[gpu], gpu/fsc_2[gpu]):\n  "
                     "no usable GPU: install CuPy", "gpu/picking[gpu]: could not run: other"]
    many = outcome_notes([*[_skipped(f"case_with_a_long_name_{i}[gpu]") for i in range(30)], passed])
    assert len(many) == 1 and "and " in many[0] and len(many[0]) <= MAX_LINE


@pytest.mark.parametrize("backend, says", [("none", "CPU only, 4 threads"), ("numpy", "numpy backend")])
def test_compare_says_what_ran(tmp_path, backend, says, capsys):
    from pytest_cryobench import cli
    from tests.helpers import make_test_info, write_run

    (tmp_path / "r").mkdir()
    path = write_run(lambda **kw: make_test_info(**{**kw, "instance_information": {
        **make_test_info()["instance_information"], "logical_cores": 4}}), tmp_path / "r", "cb1", backend=backend)
    cli.main(["compare", str(path)])
    out = capsys.readouterr().out
    assert says in out and "none backend" not in out
