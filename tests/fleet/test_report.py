"""``cryobench fleet report`` on fleet directories written by hand (job records and result files
as the jobs write them): outliers, nodes that could not run, baselines, the HTML page. No SLURM
needed: a fleet whose jobs have all ended is read from shared storage alone."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_cryobench.cli import main
from pytest_cryobench.fleet.jobs import FLEET_KIND, FLEET_VERSION, NOT_SUBMITTED, JobRecord, write_json
from pytest_cryobench.fleet.report import build_fleet_report, render_fleet_text
from pytest_cryobench.record.model import CaseRecord, group_document, write_group
from tests.helpers import make_test_info

ROUNDS = 9


def read_case(seconds: float, io_share: float) -> CaseRecord:
    """particle_random_read of nine rounds spread by +-2% around ``seconds``, ``io_share`` of it IO."""
    totals = [seconds * (1 + 0.005 * k) for k in range(-4, 5)]
    return CaseRecord("fs", "particle_random_read", "bench::read",
                      samples={"read_particles": [io_share * t for t in totals],
                               "open_files": [(1 - io_share) * t for t in totals], "total": totals},
                      tags={"read_particles": ["IO"], "open_files": ["CPU"]},
                      headline={"name": "particle_random_read_time", "per": None}, checks={"passed": True})


def decode_case(seconds: float) -> CaseRecord:
    totals = [seconds * (1 + 0.005 * k) for k in range(-4, 5)]
    return CaseRecord("cpu", "tiff", "bench::tiff", samples={"decode": totals, "total": totals},
                      tags={"decode": ["CPU"]}, headline={"name": "tiff", "per": None}, checks={"passed": True})


def make_fleet(out: Path, times: dict[str, float | None], slow_io: str | None = None) -> Path:
    """A finished fleet: ``times`` per node (``None``: the node was down at submission)."""
    write_json(out / "fleet.json", {"kind": FLEET_KIND, "version": FLEET_VERSION, "partition": "gpu",
                                    "nodes": list(times), "created_at": 1.0})
    for i, (node, seconds) in enumerate(times.items()):
        if seconds is None:
            job = JobRecord(node, None, NOT_SUBMITTED, reason=f"node {node} is drain: fan")
        else:
            job = JobRecord(node, str(100 + i), "COMPLETED", submitted_at=1.0, started_at=2.0, ended_at=3.0,
                            exit_code=0, stdout=str(out / node / "job.out"), stderr=str(out / node / "job.err"))
            run = f"cb2026120{i}-000000"
            io_share = 0.9 if node == slow_io else 0.5
            (out / node).mkdir(parents=True, exist_ok=True)
            write_group(out / node, group_document("fs", [read_case(seconds, io_share)], make_test_info(), run))
            write_group(out / node, group_document("cpu", [decode_case(0.2)], make_test_info(), run))
        write_json(out / node / "job.json", job.to_json())
    return out


def test_the_slow_node_is_named_with_its_component_and_a_down_node_is_not_compared(tmp_path, capsys):
    out = make_fleet(tmp_path / "f", {"n01": 1.0, "n02": 1.02, "n03": 0.98, "n07": 2.4, "n08": None},
                     slow_io="n07")
    report = build_fleet_report(out)
    (slow,) = report.outliers[("fs", "particle_random_read")]
    assert slow.node == "n07" and slow.tags == ("IO",) and slow.timing == "read_particles"
    assert abs(slow.factor - 2.4 / 1.01) < 1e-9  # median of 0.98, 1.0, 1.02, 2.4
    assert ("cpu", "tiff") not in report.outliers and report.judged == 2
    assert [n.node for n in report.could_not_run] == ["n08"]
    text = "\n".join(render_fleet_text(report))
    assert "n07: particle_random_read 2.4x the fleet median; IO (read_particles +" in text
    assert "n08: not submitted: node n08 is drain: fan" in text
    assert "(reference)" in text and "n08" not in next(line for line in text.splitlines() if "(reference)" in line)
    assert main(["fleet", "report", str(out), "--html", str(tmp_path / "f.html")]) == 1
    page = (tmp_path / "f.html").read_text()
    assert "n07: particle_random_read 2.4x the fleet median; IO" in page and "n08: not submitted" in page
    capsys.readouterr()


def test_a_fleet_without_outliers_exits_0_and_says_how_it_judged(tmp_path, capsys):
    out = make_fleet(tmp_path / "f", {"n1": 1.0, "n2": 1.01, "n3": 0.99})
    assert main(["fleet", "report", str(out)]) == 0
    said = capsys.readouterr().out
    assert "outliers: none (2 case(s) on 3 nodes" in said


def test_two_nodes_are_not_judged(tmp_path, capsys):
    out = make_fleet(tmp_path / "f", {"n1": 1.0, "n2": 3.0, "n3": None})
    assert main(["fleet", "report", str(out)]) == 0
    assert "not judged: 2 node(s) with results; the rule needs at least 3" in capsys.readouterr().out


def test_each_node_is_compared_with_its_own_baseline(tmp_path, capsys):
    before = make_fleet(tmp_path / "before", {"n1": 1.0, "n2": 1.0, "n3": 1.0})
    after = make_fleet(tmp_path / "after", {"n1": 1.0, "n2": 2.0, "n3": 1.0})  # one node, not an outlier alone
    report = build_fleet_report(after, baseline=before)
    assert [node for node, _ in report.baseline] == ["n1", "n2", "n3"]
    assert len(report.baseline_regressions) == 1 and report.baseline_regressions[0].startswith(
        "n2: fs/particle_random_read")
    assert main(["fleet", "report", str(after), "--baseline", str(before)]) == 1
    said = capsys.readouterr().out
    assert "n2 against its baseline:" in said and "1 test(s) slower than their node's baseline:" in said


def test_a_node_whose_job_wrote_nothing_could_not_run(tmp_path):
    out = make_fleet(tmp_path / "f", {"n1": 1.0, "n2": 1.0, "n3": 1.0})
    for path in (out / "n3").glob("*_benchmark_data.*"):
        path.unlink()
    job = json.loads((out / "n3" / "job.json").read_text())
    job.update(state="FAILED", exit_code=4, reason=f"exit status 4; see {job['stderr']}")
    (out / "n3" / "job.json").write_text(json.dumps(job))
    report = build_fleet_report(out)
    assert [(n.node, n.problem) for n in report.could_not_run] == [
        ("n3", f"failed: exit status 4; see {job['stderr']}")]


def test_not_a_fleet_directory_is_said_plainly(tmp_path, capsys):
    assert main(["fleet", "report", str(tmp_path)]) == 2
    assert "is not a fleet run's directory" in capsys.readouterr().err
    assert main(["fleet", "status", str(tmp_path)]) == 2
