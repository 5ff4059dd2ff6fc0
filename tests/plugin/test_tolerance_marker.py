"""``@pytest.mark.cryobench_tolerance(ratio)``: a case's own allowed slowdown, as pytest-timeout's
per-test marker; command line > reference's own > marker > 1.25; a bad marker names its test."""

from __future__ import annotations

import textwrap

import pytest

from pytest_cryobench.record.verdicts import DEFAULT_TOLERANCE, resolve_tolerance

SUITE = textwrap.dedent("""
    import pytest

    pytestmark = pytest.mark.cryobench_tolerance({module})

    @pytest.mark.cryobench_name("own")
    @pytest.mark.cryobench_tolerance({own})
    def test_own(cryobench_case):
        pass

    @pytest.mark.cryobench_name("inherited")
    def test_inherited(cryobench_case):
        pass
""")


def _run(pytester, smoke_args, module="1.5", own="2.0"):
    path = pytester.makepyfile(bench_tol=SUITE.format(module=module, own=own))
    return pytester.runpytest_subprocess(*smoke_args, str(path))


def test_marker_sets_the_case_tolerance(pytester, smoke_args, bench_dirs):
    import json

    result = _run(pytester, smoke_args)
    result.assert_outcomes(passed=2)
    (doc_path,) = bench_dirs["out"].glob("*_benchmark_data.json")
    tests = json.loads(doc_path.read_text())["tests"]
    assert tests["own"]["info"]["tolerance"] == 2.0  # the test's own marker is closest
    assert tests["inherited"]["info"]["tolerance"] == 1.5  # the module's pytestmark


@pytest.mark.parametrize("module, message", [
    ("0.9", "must be a ratio of at least 1.0"),
    ("'fast'", "is not a number"),
])
def test_bad_marker_is_a_usage_error_naming_the_test(pytester, smoke_args, module, message):
    result = _run(pytester, smoke_args, module=module)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*@pytest.mark.cryobench_tolerance on *bench_tol.py::test_inherited*{message}*"])


def test_precedence():
    assert resolve_tolerance(1.1, None, 1.5) == 1.1  # --cryobench-tolerance wins
    assert resolve_tolerance(None, None, 1.5) == 1.5  # the marker
    assert resolve_tolerance(None, None, None) == DEFAULT_TOLERANCE
