"""The requirements suite through pytester: tiers become outcomes, GPU cases say why they could not
run, bad Live options are usage errors, and the results reach the result file and compare."""

from __future__ import annotations

import json

import pytest

from pytest_cryobench.measure.backend import GpuInfo, GpuInventory
from pytest_cryobench.requirements import probes
from tests.helpers import figures_of, load_results

CPU_CASES = ("platform", "kernel", "non_root", "open_files", "dev_shm", "memory_bandwidth",
             "project_storage_read", "ssd_cache")


@pytest.fixture
def fast_probes(monkeypatch):
    """A quick triad and a non-root user, so that outcomes do not depend on who runs the tests."""
    real = probes.platform_facts
    monkeypatch.setattr(probes, "platform_facts", lambda: {**real(), "root": False, "uid": 1000})
    return monkeypatch


def _requirements(out):
    doc = load_results(out, "requirements")
    return doc, {test: status for test, status in doc["tests"].items()}


def test_not_run_unless_asked_for(pytester, smoke_args):
    result = pytester.runpytest(*smoke_args, "--collect-only", "-q")
    assert "bench_requirements" not in result.stdout.str()
    result = pytester.runpytest(*smoke_args, "-m", "requirements", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*bench_requirements.py::test_memory_bandwidth*"])
    result = pytester.runpytest(*smoke_args, "-m", "cpu")
    result.stdout.fnmatch_lines(["*hardware requirement checks not run: add -m requirements*"])
    # a path to the suite asks for it too
    from pytest_cryobench.locations import bundled_dir

    suite = bundled_dir("bench_suites") / "bench_requirements.py"
    result = pytester.runpytest(*smoke_args, f"{suite}::test_kernel", "-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_no_gpu_cpu_requirements_still_checked(pytester, smoke_args, bench_dirs, fast_probes):
    import pytest_cryobench.plugin.session as session

    fast_probes.setattr(session, "query_gpus", lambda: GpuInventory((), error="NVML is not usable (no driver)"))
    result = pytester.runpytest_inprocess(*smoke_args, "-m", "requirements", "-p", "no:randomly")
    doc, status = _requirements(bench_dirs["out"])
    for name in CPU_CASES:
        req = status[name]["info"]["requirement"]
        expected = "failed" if req["tier"] == "below minimum" else "passed"
        assert status[name]["outcome"] == expected, (name, req)
    for name in ("cpu_cores_per_gpu", "ram_per_gpu", "nvidia_driver", "cuda_version", "live_gpu_lanes",
                 "gpu_memory[gpu]", "gpu_compute_capability[gpu]", "largest_box[gpu]",
                 "live_gpu_memory_preprocessing"):
        assert status[name]["outcome"] == "skipped", name
        assert status[name]["reason"].startswith("no GPU: NVML is not usable (no driver)"), name
    assert "give --cryobench-live-camera" in status["live_throughput"]["reason"]
    assert status["non_root"]["info"]["requirement"]["tier"] == "pass"
    assert figures_of(doc, "memory_bandwidth")["gb_per_s"].unit == "GB/s"
    result.stdout.re_match_lines([r"requirement\s+measured\s+minimum\s+recommended\s+verdict",
                                  r"memory_bandwidth\s+[\d.,]+ GB/s\s+50 GB/s\s+100 GB/s\s+(pass|below)",
                                  r"gpu_memory\[gpu\]\s+-\s+-\s+-\s+could not run"])


@pytest.mark.parametrize("gb_per_s, outcome, tier", [(40.0, "failed", "below minimum"),
                                                     (80.0, "passed", "below recommended"),
                                                     (150.0, "passed", "pass")])
def test_tiers_decide_the_outcome(pytester, smoke_args, bench_dirs, fast_probes, gb_per_s, outcome, tier):
    fast_probes.setattr(probes, "stream_triad", lambda elements, threads, **kw: probes.Bandwidth(
        gb_per_s, elements, threads, [0.1]))
    result = pytester.runpytest_inprocess(*smoke_args, "-m", "requirements", "-k", "memory_bandwidth",
                                          "-p", "no:randomly")
    _, status = _requirements(bench_dirs["out"])
    assert status["memory_bandwidth"]["outcome"] == outcome
    assert status["memory_bandwidth"]["info"]["requirement"]["tier"] == tier
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*CPU memory bandwidth*: 40 GB/s is below the minimum 50 GB/s*"])
    if tier == "below recommended":
        result.stdout.fnmatch_lines(["*memory_bandwidth: CPU memory bandwidth*80 GB/s is below the recommended*"])


def test_running_as_root_is_below_minimum(pytester, smoke_args, bench_dirs, monkeypatch):
    real = probes.platform_facts
    monkeypatch.setattr(probes, "platform_facts", lambda: {**real(), "root": True, "uid": 0})
    result = pytester.runpytest_inprocess(*smoke_args, "-m", "requirements", "-k", "non_root", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*running as a regular (non-root) user: no is below the minimum yes; running as root*"])


def test_fake_gpus_are_checked_per_gpu(pytester, smoke_args, bench_dirs, fast_probes):
    import pytest_cryobench.plugin.session as session

    gpus = (GpuInfo(0, "NVIDIA GeForce GTX 1080 Ti", "00000000:02:00.0", 11_811_160_064, (6, 1)),
            GpuInfo(1, "NVIDIA GeForce GTX 1080", "00000000:03:00.0", 8_589_934_592, (6, 1)))
    fast_probes.setattr(session, "query_gpus", lambda: GpuInventory(gpus, "535.54.03", "12.2"))
    pytester.runpytest_inprocess(*smoke_args, "-m", "requirements", "-k", "gpu or driver or cuda or lanes or box",
                                 "--cryobench-live-camera=k2", "-p", "no:randomly")
    _, status = _requirements(bench_dirs["out"])
    tier = {name: s["info"]["requirement"]["tier"] for name, s in status.items() if "requirement" in s["info"]}
    assert tier["gpu_memory[gpu0]"] == "pass" and tier["gpu_memory[gpu1]"] == "below minimum"
    assert tier["gpu_compute_capability[gpu0]"] == "below recommended"
    assert tier["nvidia_driver"] == "pass" and tier["cuda_version"] == "pass"
    assert tier["live_gpu_lanes"] == "below minimum"  # 2 GPUs: lanes switched by hand
    assert tier["cpu_cores_per_gpu"] in ("below minimum", "below recommended", "pass")
    # K2 data needs 8 GB to preprocess: the 8 GiB GTX 1080 (8.6 GB) has it; 3D refinement needs 11
    assert tier["live_gpu_memory_preprocessing"] == "pass"
    assert tier["live_gpu_memory_streaming_3d_refinement"] == "below minimum"
    box = status["largest_box[gpu0]"]["info"]["requirement"]
    assert box["value"] == box["planned"] > 256 and "not confirmed on the GPU" in box["detail"]


@pytest.mark.parametrize("option, message", [
    ("--cryobench-live-camera=K5", "*--cryobench-live-camera*'K5'*known cameras: K2, K2-superres, K3, K3-superres*"),
    ("--cryobench-live-rate=-3", "*--cryobench-live-rate*'-3' must be a positive number*"),
    ("--cryobench-live-rate=fast", "*--cryobench-live-rate*'fast' is not a number*"),
])
def test_bad_live_options_are_usage_errors(pytester, smoke_args, option, message):
    result = pytester.runpytest(*smoke_args, "-m", "requirements", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_results_reach_compare(pytester, smoke_args, bench_dirs, fast_probes, capsys):
    from pytest_cryobench.cli import main

    pytester.runpytest_inprocess(*smoke_args, "-m", "requirements", "-k", "kernel or open_files",
                                 "--cryobench-run-id=req", "-p", "no:randomly")
    path = bench_dirs["out"] / "req_requirements_benchmark_data.json"
    assert json.loads(path.read_text())["type"] == "requirements"
    main(["compare", str(path)])
    out = capsys.readouterr().out
    assert "[requirements]" in out
    assert any(line.startswith("kernel ") and ("pass" in line or "below" in line) for line in out.splitlines())
    page = bench_dirs["out"] / "req.html"
    main(["report", str(path), "--html", str(page)])
    import re

    payload = re.search(r'<script type="application/json" id="cryobench-data">(.*?)</script>', page.read_text(), re.S)
    groups = json.loads(payload.group(1).replace("<\\/", "</"))["groups"]
    cells = {t["test"]: t["cells"][0] for g in groups if g["group"] == "requirements" for t in g["tests"]}
    assert cells["open_files"]["text"].endswith(" files")
    assert cells["kernel"]["mark"] in ("pass", "below recommended", "below minimum")


@pytest.mark.parametrize("rate, outcome", [(1, "passed"), (1e9, "failed")])  # ~30 movies/h here
def test_live_throughput_on_the_cpu(pytester, smoke_args, bench_dirs, fast_probes, rate, outcome):
    result = pytester.runpytest_inprocess(*smoke_args, "-m", "requirements", "-k", "live_throughput",
                                          "--cryobench-backend=numpy", "--cryobench-live-camera=K3",
                                          f"--cryobench-live-rate={rate:g}", "-p", "no:randomly")
    doc, status = _requirements(bench_dirs["out"])
    case = status["live_throughput"]
    assert case["outcome"] == outcome, case["reason"]
    req = case["info"]["requirement"]
    assert req["camera"] == "K3" and req["lanes"] == 1 and req["scale_factor"] > 1
    assert doc["tests"]["live_throughput"]["checks"]["shifts_passed"] is True
    assert set(doc["timings"]["live_throughput"]) == {"read", "decompress", "upload", "gain", "align", "total"}
    assert doc["tests"]["live_throughput"]["tags"]["read"] == ["IO"]
    seconds = figures_of(doc, "live_throughput")["seconds_per_movie"].value
    assert req["value"] == pytest.approx(3600 / seconds)
    if outcome == "passed":
        assert req["detail"].startswith("keeps up: K3 movies take")
    else:
        result.stdout.fnmatch_lines(["*below the minimum requirement: Live preprocessing keeps up with the "
                                     "microscope: * movies/h is below the minimum 1,000,000,000 movies/h; "
                                     "falls behind by *"])


def test_live_throughput_without_gpu_says_how_to_measure_the_cpu(pytester, smoke_args, bench_dirs, fast_probes):
    import pytest_cryobench.plugin.session as session

    fast_probes.setattr(session, "query_gpus", lambda: GpuInventory((), error="NVML is not usable (no driver)"))
    pytester.runpytest_inprocess(*smoke_args, "-m", "requirements", "-k", "live_throughput",
                                 "--cryobench-live-camera=Falcon4-EER", "--cryobench-live-rate=200",
                                 "-p", "no:randomly")
    _, status = _requirements(bench_dirs["out"])
    reason = status["live_throughput"]["reason"]
    assert status["live_throughput"]["outcome"] == "skipped"
    assert "no usable GPU: NVML is not usable (no driver)" in reason and "--cryobench-backend numpy" in reason
