"""The engine's uploads (one stream and one pinned staging buffer per thread) and its event-timed
spans, with a fake CuPy that counts streams, pinned buffers and synchronisations."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np

from pytest_cryobench.engine.streams import EventSpans, Uploader
from pytest_cryobench.measure.timing import SubTimings


class FakeDeviceArray(np.ndarray):
    def set(self, host, stream=None):
        self.stream = stream
        np.copyto(self, host)


def counting_cupy(monkeypatch):
    log = {"streams": 0, "pinned": 0, "syncs": 0, "events": 0}

    class Stream:
        def __init__(self, non_blocking=False):
            log["streams"] += 1

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def synchronize(self):
            log["syncs"] += 1

    class Event:
        def __init__(self):
            log["events"] += 1
            self.t = None

        def record(self, stream=None):
            self.t = 0.002 * log["events"]

        def synchronize(self):
            pass

    def empty_pinned(shape, dtype):
        log["pinned"] += 1
        return np.empty(shape, dtype)

    monkeypatch.setitem(sys.modules, "cupyx", SimpleNamespace(empty_pinned=empty_pinned))
    cupy = SimpleNamespace(__name__="cupy", empty=lambda shape, dtype: np.empty(shape, dtype).view(FakeDeviceArray),
                           cuda=SimpleNamespace(Stream=Stream, Event=Event,
                                                get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3))
    return cupy, log


def test_numpy_uploads_are_asarray():
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert Uploader(np)(host) is host


def test_one_stream_and_one_staging_buffer_per_uploader(monkeypatch):
    cupy, log = counting_cupy(monkeypatch)
    upload = Uploader(cupy)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((b, 8, 8)).astype(np.float32) for b in (4, 4, 3)]
    out = [upload(b) for b in batches]
    for host, device in zip(batches, out, strict=True):
        np.testing.assert_array_equal(np.asarray(device), host)
        assert device.stream is upload.stream
    assert log["streams"] == 1 and log["pinned"] == 1 and log["syncs"] == 3
    upload(np.zeros((9, 8, 8), np.float32))  # a larger batch grows the staging buffer once
    assert log["pinned"] == 2 and log["streams"] == 1


def test_gpu_spans_come_from_events_and_host_spans_from_the_clock(monkeypatch):
    cupy, log = counting_cupy(monkeypatch)
    st = SubTimings(lambda: (_ for _ in ()).throw(AssertionError("no device sync at span boundaries")))
    st.start_round()
    spans = EventSpans(st, cupy)
    with spans.span("fft", "GPU"):
        pass
    with spans.span("read_particles", "IO"):
        pass
    assert "fft" not in st.rounds[-1] and "read_particles" in st.rounds[-1]
    spans.flush()
    assert st.rounds[-1]["fft"] > 0 and log["events"] == 2
