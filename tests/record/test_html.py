"""``cryobench report --html``: a self-contained page, checked as text and in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_cryobench.cli import main
from pytest_cryobench.record.compare import build_table
from pytest_cryobench.record.html import render_html, report_data
from pytest_cryobench.record.references import load_column

ARTIFACTS = Path(os.environ.get("CRYOBENCH_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))


def _page(runs) -> str:
    table = build_table([load_column(str(p)) for p in runs], detail=True)
    return render_html(table, "Before and after <the new SSD>")


def test_page_is_self_contained(runs):
    page = _page(runs)
    # nothing is fetched: no external script, style sheet, image or font
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert "<script src" not in page
    # the title is escaped, the data is embedded and parses
    assert "Before and after &lt;the new SSD&gt;" in page
    payload = re.search(r'<script type="application/json" id="cryobench-data">(.*?)</script>', page, re.S)
    data = json.loads(payload.group(1).replace("<\\/", "</"))
    assert [c["name"] for c in data["columns"]] == ["cb20251101-080000", "cb20251102-080000", "cb20251103-080000"]
    assert [g["group"] for g in data["groups"]] == ["fs", "gpu"]


def test_report_data_has_breakdown_verdicts_and_instances(runs):
    table = build_table([load_column(str(p)) for p in runs], detail=True)
    data = report_data(table, "t")
    gpu = next(g for g in data["groups"] if g["group"] == "gpu")
    fsc = next(t for t in gpu["tests"] if t["test"] == "fsc_loose[cpu]")
    assert [s["name"] for s in fsc["subs"]] == ["mask", "fsc"]
    assert fsc["subs"][0]["tags"] == ["CPU"]
    assert fsc["subs"][0]["seconds"][1] == pytest.approx(0.6 * 0.8)
    assert [c["mark"] for c in fsc["cells"]] == ["ref", "slower", "not comparable"]
    cpu = next(row for row in data["instance"] if row["key"] == "cpu_model")
    assert cpu["values"] == ["AMD EPYC 7543 32-Core Processor"] * 3
    gpus = next(row for row in data["instance"] if row["key"] == "gpus")
    assert gpus["values"][0] == "NVIDIA H100 80GB HBM3 00000000:1B:00.0; NVIDIA H100 80GB HBM3 00000000:43:00.0"
    assert data["regressions"] == [
        "gpu/fsc_loose[cpu] in cb20251102-080000: fsc_loose_time 1.60x [1.54, 1.66] slower than the reference "
        "(tolerance 1.25x, 99% interval)"]


def test_cli_writes_the_page(runs, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", *map(str, runs), "--html", str(out)]) == 1  # fsc_loose is slower
    assert "1 test(s) slower than the reference" in capsys.readouterr().out
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(runs[0]), "--html", str(tmp_path / "no" / "such" / "dir" / "r.html")]) == 2
    assert "cannot write" in capsys.readouterr().err


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars"]


@pytest.fixture
def chromium():
    found = _chromium()
    if found is None:
        if os.environ.get("CRYOBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail("CRYOBENCH_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); CI installs it")
    return found


def test_charts_render_in_a_headless_browser(runs, tmp_path, chromium):
    out = tmp_path / "report.html"
    main(["report", *map(str, runs), "--html", str(out)])
    common = [chromium, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    # the script ran to its end and drew every chart: a bar chart and a breakdown per group
    assert 'data-charts-rendered="4"' in dom
    bars = re.findall(r'<rect[^>]*class="bar"[^>]*>', dom)
    assert len(bars) == 5 * 3 - 1  # 5 tests x 3 columns, less the engine case that could not run
    widths = [float(re.search(r'width="([0-9.]+)"', bar).group(1)) for bar in bars]
    assert max(widths) == pytest.approx(520.0) and min(widths) > 0
    assert len(re.findall(r'class="segment"', dom)) > 0
    assert dom.count('class="slower"') >= 1  # the verdict table marks the regression
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run([*common, "--window-size=1400,2200", f"--screenshot={shot}", out.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a page with charts, not a blank one
