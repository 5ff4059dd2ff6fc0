"""SubTimings (spans, tags, device sync before every clock read) and round_stats."""

from __future__ import annotations

import pytest

from pytest_cryobench.measure.timing import TAGS, SubTimings, round_stats


class FakeClock:
    """A clock that advances by the given steps, logging every read after a sync."""

    def __init__(self, events: list[str], steps=None, step: float = 1.0) -> None:
        self.events = events
        self.t = 0.0
        self.steps = list(steps) if steps is not None else None
        self.step = step

    def sync(self) -> None:
        self.events.append("sync")

    def __call__(self) -> float:
        self.events.append("clock")
        value = self.t
        self.t += self.steps.pop(0) if self.steps else self.step
        return value


def make(steps=None, step=1.0):
    events: list[str] = []
    clock = FakeClock(events, steps, step)
    return SubTimings(synchronize=clock.sync, clock=clock), events


def test_synchronize_precedes_every_clock_read():
    st, events = make()
    st.start_round()
    with st.span("a", "GPU"):
        pass
    with st.span("b"):
        pass
    st.now()
    assert events.count("clock") == 5
    assert events == ["sync", "clock"] * 5


def test_spans_accumulate_within_a_round():
    st, _ = make(steps=[2.0, 0.5, 3.0, 0.5, 7.0, 0.5])
    st.start_round()
    for _ in range(3):
        with st.span("read", "IO"):
            pass
    assert st.rounds == [{"read": pytest.approx(12.0)}]
    assert st.tags == {"read": ("IO",)}


def test_add_accumulates_and_starts_a_round_if_needed():
    st = SubTimings()
    st.add("x", 1.5, "CPU")
    st.add("x", 0.5)
    st.add("y", 2.0, "Alloc", "GPU")
    assert st.rounds == [{"x": 2.0, "y": 2.0}]
    assert st.tags == {"x": ("CPU",), "y": ("Alloc", "GPU")}  # a later untagged add keeps the tags


def test_medians_over_rounds_count_missing_spans_as_zero():
    st = SubTimings()
    for spans in ({"a": 1.0, "b": 3.0}, {"a": 2.0}, {"a": 10.0, "b": 1.0}):
        st.start_round()
        for name, seconds in spans.items():
            st.add(name, seconds)
    assert st.medians() == {"a": 2.0, "b": 1.0}
    assert list(st.medians()) == ["a", "b"]


def test_medians_even_number_of_rounds():
    st = SubTimings()
    for seconds in (4.0, 1.0, 3.0, 2.0):
        st.start_round()
        st.add("a", seconds)
    assert st.medians() == {"a": 2.5}


def test_medians_empty():
    assert SubTimings().medians() == {}


def test_unknown_tag_rejected():
    st = SubTimings()
    with pytest.raises(ValueError, match=r"unknown component tag\(s\) \['Disk'\]"):
        st.add("x", 1.0, "IO", "Disk")
    assert st.rounds in ([], [{}])
    assert "x" not in st.tags


def test_unknown_tag_rejected_by_span():
    st, _ = make()
    st.start_round()
    with pytest.raises(ValueError, match="unknown component tag"):
        with st.span("x", "NVMe"):
            pass


def test_span_records_even_when_the_body_raises():
    st, events = make(steps=[4.0, 1.0])
    st.start_round()
    with pytest.raises(RuntimeError, match="boom"):
        with st.span("work", "CPU"):
            raise RuntimeError("boom")
    assert st.rounds == [{"work": 4.0}]
    assert events == ["sync", "clock", "sync", "clock"]


def test_default_clock_is_monotonic_and_real():
    st = SubTimings()
    st.start_round()
    with st.span("sleepless"):
        sum(range(1000))
    assert st.rounds[0]["sleepless"] >= 0.0


def test_known_tags():
    assert set(TAGS) == {"CPU", "GPU", "PCIe", "Alloc", "IO"}


# --------------------------------------------------------------------------- round_stats

def test_round_stats_odd():
    stats = round_stats([3, 1, 2, 5, 4])
    assert stats == {"median": 3.0, "min": 1.0, "max": 5.0, "mean": 3.0, "iqr": 2.0, "rounds": 5}
    assert all(isinstance(stats[k], float) for k in ("median", "min", "max", "mean", "iqr"))


def test_round_stats_even_inclusive_quartiles():
    stats = round_stats([4.0, 2.0, 1.0, 3.0])
    assert stats["median"] == 2.5
    assert stats["iqr"] == pytest.approx(3.25 - 1.75)
    assert (stats["min"], stats["max"], stats["rounds"]) == (1.0, 4.0, 4)
    assert stats["mean"] == pytest.approx(2.5)


def test_round_stats_two_rounds():
    stats = round_stats([1.0, 3.0])
    assert stats["iqr"] == pytest.approx(1.0)  # 2.5 - 1.5
    assert stats["median"] == 2.0


def test_round_stats_single_round():
    assert round_stats([0.25]) == {"median": 0.25, "min": 0.25, "max": 0.25, "mean": 0.25,
                                   "iqr": 0.0, "rounds": 1}


def test_round_stats_empty_raises():
    with pytest.raises(ValueError, match="no rounds"):
        round_stats([])


def test_round_stats_does_not_modify_input():
    times = [3.0, 1.0, 2.0]
    round_stats(times)
    assert times == [3.0, 1.0, 2.0]
