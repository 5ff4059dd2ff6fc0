"""A slower or undecided verdict on a loaded machine says so; on a quiet one it does not."""

from __future__ import annotations

from pytest_cryobench.plugin.outcome import _with_load
from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.text import load_notes


def _record(share):
    return CaseRecord("fs", "mrc", info={"other_load": share,
                                         "rounds": {"count": 5, "stopped": "max_rounds", "precision": 0.12}})


def test_loaded_slower_is_marked():
    verdict = {"verdict": "slower", "detail": "mrc 2.00x [1.5, 2.6] slower"}
    marked = _with_load(verdict, _record(0.45))
    assert marked["loaded"] == 0.45 and marked["detail"].endswith("(other processes used 45% of the CPUs during this case)")
    assert _with_load(verdict, _record(0.02)) == verdict  # a quiet machine: nothing added
    assert _with_load({"verdict": "pass", "detail": "x"}, _record(0.45)) == {"verdict": "pass", "detail": "x"}


def test_summary_notes_name_loaded_and_imprecise_cases():
    notes = load_notes([_record(0.45), CaseRecord("fs", "tiff", info={"other_load": 0.0})])
    assert notes[0].startswith("machine load: other processes used up to 45% of the CPUs during 1 case(s)")
    assert notes[0].splitlines()[1] == "  fs/mrc"
    assert "fs/mrc (12% after 5)" in notes[1]
