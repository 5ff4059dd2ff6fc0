"""Options as a user writes them in an ini file and on the command line."""

from __future__ import annotations

import pytest

from pytest_cryobench.plugin.options import OptionError, parse_gpus
from tests.helpers import load_results


def test_ini_reference_comma_list_is_split(pytester, particle_args):
    pytester.makeini("[pytest]\ncryobench_reference = ci-2core-epyc-numpy-smoke, no-such-reference\n")
    result = pytester.runpytest(*particle_args, "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--cryobench-reference no-such-reference: no such file" in err
    assert "ci-2core-epyc-numpy-smoke, no-such-reference" not in err
    pytester.makeini("[pytest]\ncryobench_reference = ci-2core-epyc-numpy-smoke,\n    ci-2core-epyc-numpy-standard\n")
    assert pytester.runpytest(*particle_args, "--co").ret == pytest.ExitCode.OK


def test_relative_output_in_the_ini_file_is_placed_beside_it(pytester, particle_args, bench_dirs, monkeypatch):
    pytester.makeini("[pytest]\ncryobench_output = results-from-ini\n")
    sub = pytester.mkdir("somewhere-below")
    monkeypatch.chdir(sub)
    args = [a for a in particle_args if not a.startswith("--cryobench-output=")]
    pytester.runpytest(*args, "-k", "sequential", "--cryobench-run-id=ini").assert_outcomes(passed=1)
    assert load_results(pytester.path / "results-from-ini")["run_id"] == "ini"
    assert not (sub / "results-from-ini").exists()


@pytest.mark.parametrize(("text", "means"), [("0", (0,)), ("3,", (3,)), ("0,2", (0, 2)), ("2", 2),
                                             ("count:1", 1), ("all", "all")])
def test_gpus_values(text, means):
    assert parse_gpus(text) == means


@pytest.mark.parametrize("text", ["-1", "count:0", "a,b", "0,0"])
def test_bad_gpus_values(text):
    with pytest.raises(OptionError):
        parse_gpus(text)


def test_gpus_zero_is_accepted_on_the_command_line(pytester, particle_args):
    result = pytester.runpytest(*particle_args, "--cryobench-gpus=0", "--co")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
