"""Options (parsers, precedence, error messages) and the resolved Settings."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cryobench.plugin import options
from pytest_cryobench.plugin.options import (
    OPTIONS,
    OPTIONS_BY_NAME,
    OptionError,
    add_to_argparse,
    is_enabled,
    parse_bool,
    parse_gpus,
    parse_path,
    parse_positive_int,
    parse_text,
    parse_tolerance,
    resolve,
)
from pytest_cryobench.plugin.settings import build_settings, default_data_dir

INV = Path("/invocation/dir")
XDG = {"XDG_CACHE_HOME": "/xdg-cache"}


def settings(cli=None, ini=None, env=None, inv=INV):
    cli = cli or {}
    ini = ini or {}
    return build_settings(lambda dest: cli.get(dest), lambda name: ini.get(name),
                          XDG if env is None else env, inv)


# --------------------------------------------------------------------------- option table

def test_option_names_derive_flag_env_and_ini():
    spec = OPTIONS_BY_NAME["drop-caches"]
    assert spec.cli_flag == "--cryobench-drop-caches"
    assert spec.env_var == "CRYOBENCH_DROP_CACHES"
    assert spec.ini_name == spec.dest == "cryobench_drop_caches"


def test_every_option_is_unique_and_flags_are_booleans():
    names = [spec.name for spec in OPTIONS]
    assert len(names) == len(set(names))
    for spec in OPTIONS:
        if spec.flag:
            assert spec.parse is parse_bool and spec.default is False


# --------------------------------------------------------------------------- parsers

@pytest.mark.parametrize("text, expected", [
    ("smoke", "smoke"), ("Standard", "standard"), ("  FULL ", "full")])
def test_profile_choices(text, expected):
    assert OPTIONS_BY_NAME["profile"].parse(text) == expected


@pytest.mark.parametrize("name, bad", [("profile", "huge"), ("backend", "opencl"),
                                       ("drop-caches", "always"), ("profile", "")])
def test_choice_rejects_others_and_lists_choices(name, bad):
    with pytest.raises(OptionError, match="is not one of") as info:
        OPTIONS_BY_NAME[name].parse(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("all", "all"), (" ALL ", "all"), ("2", 2), ("1", 1), ("0,2", (0, 2)), ("3, 1", (3, 1)),
    ("1,", (1,)), ("0,", (0,))])
def test_parse_gpus_accepts(text, expected):
    assert parse_gpus(text) == expected


@pytest.mark.parametrize("text, message", [
    ("-1", "at least 1"), ("count:0", "at least 1"), ("two", "not an integer"),
    ("0,0", "distinct"), ("-1,2", "distinct"), (",", "distinct"), ("a,b", "a count or a list")])
def test_parse_gpus_rejects(text, message):
    with pytest.raises(OptionError, match=message):
        parse_gpus(text)


@pytest.mark.parametrize("text, expected", [("1", 1.0), ("1.25", 1.25), (" 2 ", 2.0), ("1.0", 1.0)])
def test_parse_tolerance_accepts_ratios_of_at_least_one(text, expected):
    assert parse_tolerance(text) == expected


@pytest.mark.parametrize("text, message", [
    ("0.99", "at least 1.0"), ("0", "at least 1.0"), ("-2", "at least 1.0"), ("nan", "at least 1.0"),
    ("fast", "not a number"), ("", "not a number")])
def test_parse_tolerance_rejects(text, message):
    with pytest.raises(OptionError, match=message):
        parse_tolerance(text)


@pytest.mark.parametrize("text, expected", [("1", 1), (" 7 ", 7), ("100", 100)])
def test_parse_positive_int_accepts(text, expected):
    assert parse_positive_int(text) == expected


@pytest.mark.parametrize("text, message", [("0", "at least 1"), ("-3", "at least 1"),
                                           ("1.5", "not an integer"), ("x", "not an integer")])
def test_parse_positive_int_rejects(text, message):
    with pytest.raises(OptionError, match=message):
        parse_positive_int(text)


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "on", " On ", True])
def test_parse_bool_true(text):
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "false", "No", "off", "", False])
def test_parse_bool_false(text):
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["2", "maybe", "y"])
def test_parse_bool_rejects(text):
    with pytest.raises(OptionError, match="not a boolean"):
        parse_bool(text)


def test_parse_path_expands_user_and_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CB_TEST_SUBDIR", "sub")
    assert parse_path("~/data") == tmp_path / "data"
    assert parse_path(" /x/$CB_TEST_SUBDIR/y ") == Path("/x/sub/y")
    with pytest.raises(OptionError, match="empty path"):
        parse_path("   ")


def test_parse_text_strips_and_rejects_empty():
    assert parse_text("  run-1 ") == "run-1"
    with pytest.raises(OptionError, match="empty value"):
        parse_text("  ")


# --------------------------------------------------------------------------- resolve / precedence

# option: (command-line raw, environment raw, ini raw, parsed cli, parsed env, parsed ini)
PRECEDENCE_CASES = {
    "profile": ("smoke", "full", "standard", "smoke", "full", "standard"),
    "backend": ("numpy", "cupy", "auto", "numpy", "cupy", "auto"),
    "gpus": ("2", "0,1", "all", 2, (0, 1), "all"),
    "tolerance": ("1.5", "2", "3", 1.5, 2.0, 3.0),
    "rounds": ("4", "5", "6", 4, 5, 6),
    "drop-caches": ("none", "sysctl", "fadvise", "none", "sysctl", "fadvise"),
    "run-id": ("cli-run", "env-run", "ini-run", "cli-run", "env-run", "ini-run"),
    "output": ("/c", "/e", "/i", Path("/c"), Path("/e"), Path("/i")),
    "keep-data": ("true", "0", "yes", True, False, True),
    "reference": (["a", "b"], "c, d", ["e"], ["a", "b"], ["c", "d"], ["e"]),
}


@pytest.mark.parametrize("name", sorted(PRECEDENCE_CASES))
def test_precedence_cli_over_env_over_ini_over_default(name):
    spec = OPTIONS_BY_NAME[name]
    cli, env, ini, p_cli, p_env, p_ini = PRECEDENCE_CASES[name]
    environ = {spec.env_var: env}
    assert resolve(spec, cli, environ, ini) == (p_cli, f"command line {spec.cli_flag}")
    assert resolve(spec, None, environ, ini) == (p_env, f"environment variable {spec.env_var}")
    assert resolve(spec, None, {}, ini) == (p_ini, f"ini option {spec.ini_name}")
    default = [] if spec.multiple else spec.default
    assert resolve(spec, None, {}, None) == (default, "default")


@pytest.mark.parametrize("name", sorted(PRECEDENCE_CASES))
def test_empty_environment_and_ini_values_fall_through(name):
    spec = OPTIONS_BY_NAME[name]
    empty_ini = [] if spec.multiple else ""
    value, source = resolve(spec, None, {spec.env_var: ""}, empty_ini)
    assert source == "default"
    assert value == ([] if spec.multiple else spec.default)


def test_empty_cli_list_falls_through_for_repeatable_option():
    spec = OPTIONS_BY_NAME["reference"]
    assert resolve(spec, [], {"CRYOBENCH_REFERENCE": "x"}, None) == (
        ["x"], "environment variable CRYOBENCH_REFERENCE")


def test_repeatable_option_splits_ini_text_on_lines_and_commas():
    spec = OPTIONS_BY_NAME["reference"]
    value, _ = resolve(spec, None, {}, "a\n b, c\n\n")
    assert value == ["a", "b", "c"]


@pytest.mark.parametrize("where, source", [
    ("cli", "command line --cryobench-profile"),
    ("env", "environment variable CRYOBENCH_PROFILE"),
    ("ini", "ini option cryobench_profile"),
])
def test_bad_value_error_names_option_and_source(where, source):
    spec = OPTIONS_BY_NAME["profile"]
    args = {"cli": ("huge", {}, None), "env": (None, {"CRYOBENCH_PROFILE": "huge"}, None),
            "ini": (None, {}, "huge")}[where]
    with pytest.raises(OptionError) as info:
        resolve(spec, *args)
    message = str(info.value)
    assert message.startswith("--cryobench-profile: bad value from ")
    assert source in message
    assert "'huge' is not one of smoke, standard, full" in message


def test_bad_repeatable_cli_item_names_command_line():
    spec = OPTIONS_BY_NAME["reference"]
    with pytest.raises(OptionError, match=r"--cryobench-reference: bad value from command line "
                                          r"--cryobench-reference: an empty value"):
        resolve(spec, ["ok", " "], {}, None)


# --------------------------------------------------------------------------- build_settings

def test_build_settings_defaults():
    s = settings()
    assert s.profile == "standard"
    assert s.backend == "auto"
    assert s.gpus == "all"
    assert s.drop_caches == "fadvise"
    assert s.data is None and s.baseline is None and s.run_id is None
    assert s.tolerance is None and s.rounds is None
    assert s.references == ()
    assert (s.keep_data, s.no_fail, s.anonymize) == (False, False, False)
    assert s.data_dir == Path("/xdg-cache/pytest-cryobench")
    assert s.project_dir == s.data_dir / "project"
    assert s.cache_dir == s.data_dir / "ssd-cache"
    assert s.cache_dir_is_default and s.use_ssd
    assert s.output == INV / "cryobench-results"
    assert set(s.sources) == {spec.name for spec in OPTIONS}
    assert set(s.sources.values()) == {"default"}


def test_default_data_dir_follows_xdg_cache_home(monkeypatch, tmp_path):
    assert default_data_dir({"XDG_CACHE_HOME": "/somewhere"}) == Path("/somewhere/pytest-cryobench")
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".cache" / "pytest-cryobench"
    assert default_data_dir({}) == expected
    assert default_data_dir({"XDG_CACHE_HOME": ""}) == expected
    assert settings(env={}).data_dir == expected


def test_build_settings_precedence_and_sources():
    s = settings(cli={"cryobench_profile": "smoke"},
                 env={"CRYOBENCH_PROFILE": "full", "CRYOBENCH_ROUNDS": "7", **XDG},
                 ini={"cryobench_profile": "standard", "cryobench_rounds": "2",
                      "cryobench_backend": "numpy"})
    assert (s.profile, s.rounds, s.backend) == ("smoke", 7, "numpy")
    assert s.sources["profile"] == "command line --cryobench-profile"
    assert s.sources["rounds"] == "environment variable CRYOBENCH_ROUNDS"
    assert s.sources["backend"] == "ini option cryobench_backend"
    assert s.sources["gpus"] == "default"


def test_build_settings_error_names_source():
    with pytest.raises(OptionError, match=r"--cryobench-rounds: bad value from command line "
                                          r"--cryobench-rounds: '0' must be at least 1"):
        settings(cli={"cryobench_rounds": "0"})
    with pytest.raises(OptionError, match=r"ini option cryobench_tolerance: '0.5' must be a ratio"):
        settings(ini={"cryobench_tolerance": "0.5"})
    with pytest.raises(OptionError, match=r"environment variable CRYOBENCH_GPUS"):
        settings(env={"CRYOBENCH_GPUS": "zero", **XDG})


def test_relative_paths_resolve_against_invocation_dir(tmp_path):
    s = settings(cli={"cryobench_data_dir": "rel/data", "cryobench_output": "out",
                      "cryobench_baseline": "runs/r_fs_benchmark_data.json", "cryobench_data": "ds"},
                 inv=tmp_path)
    assert s.data_dir == tmp_path / "rel" / "data"
    assert s.project_dir == tmp_path / "rel" / "data" / "project"
    assert s.cache_dir == tmp_path / "rel" / "data" / "ssd-cache"
    assert s.output == tmp_path / "out"
    assert s.baseline == tmp_path / "runs" / "r_fs_benchmark_data.json"
    assert s.data == tmp_path / "ds"
    for path in (s.data_dir, s.project_dir, s.cache_dir, s.output, s.baseline, s.data):
        assert path.is_absolute()


def test_relative_paths_from_env_and_ini_also_resolve(tmp_path):
    s = settings(env={"CRYOBENCH_PROJECT_DIR": "proj", **XDG}, ini={"cryobench_cache_dir": "cache"},
                 inv=tmp_path)
    assert s.project_dir == tmp_path / "proj"
    assert s.cache_dir == tmp_path / "cache"
    assert not s.cache_dir_is_default


def test_absolute_paths_are_kept(tmp_path):
    s = settings(cli={"cryobench_project_dir": "/abs/proj", "cryobench_cache_dir": "/abs/ssd"},
                 inv=tmp_path)
    assert s.project_dir == Path("/abs/proj")
    assert s.cache_dir == Path("/abs/ssd")


def test_no_ssd_disables_the_cache():
    s = settings(cli={"cryobench_no_ssd": "true"})
    assert s.cache_dir is None
    assert not s.use_ssd
    assert s.sources["no-ssd"] == "command line --cryobench-no-ssd"


def test_no_ssd_false_in_env_keeps_the_cache():
    s = settings(env={"CRYOBENCH_NO_SSD": "0", **XDG})
    assert s.use_ssd
    assert s.sources["no-ssd"] == "environment variable CRYOBENCH_NO_SSD"


def test_no_ssd_and_cache_dir_contradict_naming_both_sources():
    with pytest.raises(OptionError) as info:
        settings(cli={"cryobench_no_ssd": "true"}, env={"CRYOBENCH_CACHE_DIR": "/ssd", **XDG})
    message = str(info.value)
    assert "--cryobench-no-ssd (command line --cryobench-no-ssd)" in message
    assert "--cryobench-cache-dir (environment variable CRYOBENCH_CACHE_DIR)" in message
    assert "contradict" in message


def test_references_become_a_tuple_in_order():
    s = settings(cli={"cryobench_reference": ["b", "a"]}, ini={"cryobench_reference": ["z"]})
    assert s.references == ("b", "a")
    assert settings(ini={"cryobench_reference": ["z", "y"]}).references == ("z", "y")


def test_argparse_round_trip_into_settings(tmp_path):
    parser = argparse.ArgumentParser()
    add_to_argparse(parser)
    ns = parser.parse_args(["--cryobench-no-ssd", "--cryobench-reference", "a",
                            "--cryobench-reference", "b", "--cryobench-profile", "smoke",
                            "--cryobench-gpus", "0,1"])
    assert ns.cryobench_no_ssd == "true"
    assert ns.cryobench_reference == ["a", "b"]
    assert ns.cryobench_rounds is None and ns.cryobench_keep_data is None
    s = build_settings(lambda dest: getattr(ns, dest), lambda name: None,
                       {"CRYOBENCH_PROFILE": "full", **XDG}, tmp_path)
    assert s.profile == "smoke"
    assert s.references == ("a", "b")
    assert s.gpus == (0, 1)
    assert not s.use_ssd


def test_add_to_argparse_uses_addoption_when_present():
    calls = []

    class Group:
        def addoption(self, *args, **kwargs):
            calls.append((args, kwargs))

    add_to_argparse(Group())
    assert [args[0] for args, _ in calls] == [spec.cli_flag for spec in OPTIONS]
    assert all(kwargs["default"] is None for _, kwargs in calls)


# --------------------------------------------------------------------------- is_enabled

def test_is_enabled_precedence():
    assert is_enabled(True, {"CRYOBENCH": "0"}, "false") is True
    assert is_enabled(False, {"CRYOBENCH": "1"}, "false") is True
    assert is_enabled(False, {"CRYOBENCH": "0"}, "true") is False
    assert is_enabled(False, {"CRYOBENCH": ""}, "true") is True
    assert is_enabled(None, {}, "yes") is True
    assert is_enabled(False, {}, "") is False
    assert is_enabled(False, {}, None) is False


def test_is_enabled_errors_name_the_source():
    with pytest.raises(OptionError, match="environment variable CRYOBENCH: 'maybe' is not a boolean"):
        is_enabled(False, {"CRYOBENCH": "maybe"}, "")
    with pytest.raises(OptionError, match="ini option cryobench: 'sometimes' is not a boolean"):
        is_enabled(False, {}, "sometimes")


# --------------------------------------------------------------------------- import cost

def test_importing_options_does_not_import_numpy():
    code = ("import sys, pytest_cryobench.plugin.options; "
            "heavy = [m for m in ('numpy', 'mrcfile', 'jsonschema', 'psutil', 'pynvml', 'cupy') "
            "if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert options.__name__ == "pytest_cryobench.plugin.options"
