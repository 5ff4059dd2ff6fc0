"""Bad files given to the CLI and the plugin: one message naming the file, no traceback, no user
file changed; and ``report --html`` never overwrites without ``--force``."""

from __future__ import annotations

import pytest

from pytest_cryobench import cli
from tests.helpers import make_test_info, snapshot, write_run

NOT_UTF8 = b'{"kind": "cryobench-result", "note": "caf\xe9 \xff"}\n'
BINARY = bytes(range(256)) * 4


@pytest.fixture
def run_file(tmp_path):
    (tmp_path / "runs").mkdir()
    return write_run(make_test_info, tmp_path / "runs", "cb20251101-080000")


@pytest.fixture
def bad_files(tmp_path):
    files = {"not-utf8": tmp_path / "latin1.json", "binary": tmp_path / "blob.json",
             "truncated": tmp_path / "cut.json"}
    files["not-utf8"].write_bytes(NOT_UTF8)
    files["binary"].write_bytes(BINARY)
    files["truncated"].write_text('{"kind": "cryobench-result", "tests": {')
    return files


SAYS = {"not-utf8": "it is not UTF-8 text (byte 0xe9 at offset 41)", "binary": "it is a binary file",
        "truncated": "was it truncated?"}


@pytest.mark.parametrize("kind", sorted(SAYS))
@pytest.mark.parametrize("command", [["compare"], ["validate"], ["import-cryosparc", "--name", "x"],
                                     ["report", "--html", "OUT"]])
def test_bad_file_is_one_message_naming_it(command, kind, bad_files, run_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = bad_files[kind]
    before = snapshot(tmp_path)
    argv = [*command, str(bad)] if command[0] in ("validate", "import-cryosparc") else [*command, str(run_file), str(bad)]
    status = cli.main([a.replace("OUT", str(tmp_path / "page.html")) for a in argv])
    out, err = capsys.readouterr()
    assert status == (1 if command[0] == "validate" else 2)
    text = out + err
    assert str(bad) in text and SAYS[kind] in text
    assert "Traceback" not in text and "UnicodeDecodeError" not in text
    assert snapshot(tmp_path) == before


def test_compare_of_a_csv_says_it_is_csv(run_file, capsys):
    csv = run_file.with_suffix(".csv")
    csv.write_text("group,test,seconds\nfs,particle_cache,2.4\n")
    assert cli.main(["compare", str(run_file), str(csv)]) == 2
    err = capsys.readouterr().err
    assert f"{csv} is not valid JSON: it is CSV" in err and "truncated" not in err


@pytest.mark.parametrize("option", ["--cryobench-reference", "--cryobench-baseline"])
@pytest.mark.parametrize("kind", ["not-utf8", "binary"])
def test_bad_reference_or_baseline_names_the_file(pytester, particle_args, bad_files, option, kind, bench_dirs):
    bad = bad_files[kind]
    result = pytester.runpytest(*particle_args, f"{option}={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert str(bad) in err and SAYS[kind] in err and "Traceback" not in err
    assert not bench_dirs["out"].exists() or not list(bench_dirs["out"].iterdir())


def test_report_refuses_to_overwrite_without_force(run_file, tmp_path, capsys):
    page = tmp_path / "page.html"
    page.write_text("<p>the user's page</p>")
    assert cli.main(["report", str(run_file), "--html", str(page)]) == 2
    assert f"cryobench report: {page} exists; use --force to replace it" in capsys.readouterr().err
    assert page.read_text() == "<p>the user's page</p>"
    result_bytes = run_file.read_bytes()
    assert cli.main(["report", str(run_file), "--html", str(run_file), "--force"]) == 2
    assert "is one of the files being reported" in capsys.readouterr().err
    assert run_file.read_bytes() == result_bytes
    assert cli.main(["report", str(run_file), "--html", str(page), "--force"]) == 0
    assert "<html" in page.read_text().lower()


def test_compare_reference_not_given_as_a_column_is_added(run_file, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    other = write_run(make_test_info, tmp_path / "other", "cb20251102-080000", {"particle_cache": 2.0})
    status = cli.main(["compare", str(other), "--reference", str(run_file)])
    out = capsys.readouterr().out
    assert status == 1  # particle_cache is 2x slower than the reference, which is now a column
    header = out.splitlines()[0]
    assert header.index("cb20251101-080000") < header.index("cb20251102-080000")
    assert "particle_cache in cb20251102-080000" in out
    assert cli.main(["compare", str(other), "--reference", "no-such-ref"]) == 2
    assert "--reference no-such-ref: not one of the columns given" in capsys.readouterr().err
