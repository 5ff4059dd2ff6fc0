"""Real full disks (a small tmpfs) and read-only storage (a read-only bind mount).

The disk fills *after* the benchmark's own free-space check passed, as when another job writes to
the same disk: a plugin given with ``-p`` wraps the check and then takes the space left. Each run is
a subprocess, so a fault that kills the process (a ``SIGBUS`` from a memory map) fails the test
instead of the test session. Each test checks the message, the exit status, that the other cases
still ran and wrote results, that no user file changed and that nothing half-written is left.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import fill_disk, snapshot

FILLER = """
from pathlib import Path

import pytest_cryobench.{module} as target
from tests.helpers import fill_disk

_real = target.require_free_space


def _check_then_fill(path, needed, what, **kwargs):
    _real(path, needed, what, **kwargs)
    if {match!r} in what:
        fill_disk(Path({fill_dir!r}), {leave})


target.require_free_space = _check_then_fill
"""


def _filling_plugin(pytester, monkeypatch, module: str, match: str, fill_dir: Path, leave: int) -> str:
    """A ``-p`` plugin that fills ``fill_dir``'s disk right after the check whose ``what`` has ``match``."""
    import os

    repo = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(cryobench_fill=textwrap.dedent(FILLER.format(
        module=module, match=match, fill_dir=str(fill_dir), leave=leave)))
    return "cryobench_fill"


def _results(out: Path, group: str) -> dict:
    files = sorted(out.glob(f"*_{group}_benchmark_data.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and "Fatal Python error" not in text and "mrcinterpreter.py" not in text
    assert "shutil.py" not in text


def _run_on_filling_disk(pytester, monkeypatch, smoke_args, option: str, directory: Path, plugin: tuple,
                         select: str) -> tuple[str, dict]:
    """Run the smoke cases ``select`` with ``--cryobench-<option>=directory`` and a disk that fills
    (``plugin``: module, check text, dir, bytes left); expects exit 1 and no traceback."""
    name = _filling_plugin(pytester, monkeypatch, *plugin)
    args = [a for a in smoke_args if not a.startswith(f"--cryobench-{option}=")]
    result = pytester.runpytest_subprocess(*args, f"--cryobench-{option}={directory}", "-p", name,
                                           "-m", "fs", "-k", select)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    _no_traceback(text)
    out = next(Path(a.split("=", 1)[1]) for a in smoke_args if a.startswith("--cryobench-output="))
    return text, _results(out, "fs")


def test_disk_full_while_generating_movies(pytester, monkeypatch, smoke_args, bench_dirs, tmp_path, mounts):
    disk = mounts.tmpfs(tmp_path / "disk", "40m")
    data = disk / "data"
    data.mkdir()
    (data / "my-notes.txt").write_text("the user's own file\n")
    before = snapshot(data)
    text, fs = _run_on_filling_disk(pytester, monkeypatch, smoke_args, "data-dir", data,
                                    ("data.provision", "movies/mrc", disk, 5 << 20),  # room for one movie
                                    "mrc or particle_sequential")
    root = data / "synthetic-smoke"
    assert f"no space left on {root} (needed " in text and ", free " in text
    assert fs["tests"]["particle_sequential_read"]["outcome"] == "passed"
    assert fs["tests"]["mrc"]["outcome"] == "failed"
    assert f"no space left on {root}" in fs["tests"]["mrc"]["reason"]
    assert not list(data.rglob("*.tmp")) and not list(data.rglob(".*.tmp*"))
    assert {p: b for p, b in snapshot(data).items() if p in before} == before


def test_disk_full_while_writing_particles(pytester, monkeypatch, smoke_args, bench_dirs, tmp_path, mounts):
    project = mounts.tmpfs(tmp_path / "project-disk", "48m")
    (project / "my-job.txt").write_text("a CryoSPARC job's file\n")
    before = snapshot(project)
    _, fs = _run_on_filling_disk(pytester, monkeypatch, smoke_args, "project-dir", project,
                                 ("data.particles", "particle stack", project, 8 << 20), "mrc or particle")
    assert fs["tests"]["mrc"]["outcome"] == "passed"
    particle_cases = [name for name in fs["tests"] if name.startswith("particle")]
    assert len(particle_cases) == 3
    for name in particle_cases:
        assert fs["tests"][name]["outcome"] == "error"
        assert fs["tests"][name]["reason"].startswith("no space left on ")
        assert "(needed 32.79 MB" in fs["tests"][name]["reason"]
    after = snapshot(project)
    assert {p: after[p] for p in before} == before
    assert sorted(p.name for p in after) == ["my-job.txt", "other-job.bin"]  # no partial stack left


def test_disk_full_while_copying_to_the_cache(pytester, monkeypatch, smoke_args, bench_dirs, tmp_path, mounts):
    cache = mounts.tmpfs(tmp_path / "cache-disk", "48m")
    _, fs = _run_on_filling_disk(pytester, monkeypatch, smoke_args, "cache-dir", cache,
                                 ("data.particles", "the cache dir", cache, 8 << 20),
                                 "particle_sequential or particle_random")
    for name in ("particle_sequential_read", "particle_random_read"):
        assert fs["tests"][name]["outcome"] == "error"
        assert fs["tests"][name]["reason"].startswith("no space left on ")
    assert [p.name for p in cache.rglob("*") if p.is_file()] == ["other-job.bin"]  # no partial copies


def test_data_generate_on_a_full_disk(tmp_path, mounts, monkeypatch, capsys):
    from pytest_cryobench import cli
    from pytest_cryobench.data import provision

    disk = mounts.tmpfs(tmp_path / "disk", "24m")
    real = provision.require_free_space

    def check_then_fill(path, needed, what, **kwargs):
        real(path, needed, what, **kwargs)
        if "movies/mrc" in what:
            fill_disk(disk, 5 << 20)

    monkeypatch.setattr(provision, "require_free_space", check_then_fill)
    status = cli.main(["data", "generate", "--profile", "smoke", "--dir", str(disk / "data"), "--only", "mrc"])
    err = capsys.readouterr().err
    assert status == 2
    root = disk / "data" / "synthetic-smoke"
    assert f"cryobench data generate: no space left on {root} (needed " in err
    _no_traceback(err)
    assert not list(root.rglob("*.tmp")) and not (root / provision.MANIFEST_NAME).exists()


@pytest.fixture
def read_only_data(tmp_path, mounts, capsys):
    """Complete smoke MRC movies, then the data dir made read-only."""
    from pytest_cryobench import cli

    data = tmp_path / "shared-data"
    assert cli.main(["data", "generate", "--profile", "smoke", "--dir", str(data), "--only", "mrc"]) == 0
    capsys.readouterr()
    mounts.read_only(data)
    return data


def test_read_only_complete_data_dir_runs(pytester, smoke_args, bench_dirs, read_only_data):
    before = snapshot(read_only_data)
    args = [a for a in smoke_args if not a.startswith("--cryobench-data-dir")]
    result = pytester.runpytest(*args, f"--cryobench-data-dir={read_only_data}", "-m", "fs", "-k", "mrc or tiff")
    result.assert_outcomes(passed=1, failed=1)
    assert _results(bench_dirs["out"], "fs")["tests"]["mrc"]["outcome"] == "passed"
    # The TIFF movies are missing: only then is the read-only dir a problem, and the message says so.
    reason = _results(bench_dirs["out"], "fs")["tests"]["tiff"]["reason"]
    assert f"data dir {read_only_data / 'synthetic-smoke'} is not writable (Read-only file system)" in reason
    assert "movies/tiff not generated yet" in reason
    assert snapshot(read_only_data) == before


def test_engine_particle_writer_on_a_full_disk_is_an_error_not_a_signal(tmp_path, mounts):
    from pytest_cryobench.data.engine import engine_component, particle_file_name
    from pytest_cryobench.profiles import PROFILES

    disk = mounts.tmpfs(tmp_path / "disk", "1m")
    component = engine_component(PROFILES["smoke"], seed=3)
    name = particle_file_name(0)
    fill_disk(disk, 64 << 10)
    with pytest.raises(OSError) as caught:
        component.generate(name, disk / "stack.mrc", lambda done, total: None)
    import errno

    assert caught.value.errno == errno.ENOSPC
