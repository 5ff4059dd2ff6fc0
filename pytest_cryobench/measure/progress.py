"""Progress lines for long, untimed work (data generation), shown past pytest's output capture.

On a terminal a live ``tqdm`` bar is redrawn in place; off a terminal (a CI log, a file) one
plain line is printed at most every :data:`PLAIN_INTERVAL_S` seconds, and a final one, so that a
log never holds a line of carriage-return redraws thousands of characters long.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

QUIET_FOR_S = 0.5
"""Work that finishes within this many seconds prints nothing."""
PLAIN_INTERVAL_S = 5.0
"""Off a terminal, at most one progress line per this many seconds."""
LABEL_CHARS = 160
"""Longer labels (deep paths) are shortened in the middle."""


class _PastCapture:
    """A file-like ``sys.stderr`` that writes around pytest's capture (its public switch)."""

    def __init__(self, config: Any) -> None:
        self._capman = config.pluginmanager.getplugin("capturemanager") if config is not None else None

    def _uncaptured(self):
        return self._capman.global_and_fixture_disabled() if self._capman is not None else contextlib.nullcontext()

    def write(self, text: str) -> int:
        with self._uncaptured():
            sys.stderr.write(text)
            sys.stderr.flush()
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        with self._uncaptured():
            return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _short(label: str) -> str:
    if len(label) <= LABEL_CHARS:
        return label
    half = (LABEL_CHARS - 3) // 2
    return f"{label[:half]}...{label[-half:]}"


@contextlib.contextmanager
def progress(config: Any, label: str) -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(done, total)`` that shows how far the work is.

    Silent with ``-q -q`` and for work that ends within :data:`QUIET_FOR_S`; on a terminal a live
    bar (``tqdm``); elsewhere a plain ``[cryobench] label: done/total ...`` line at most every
    :data:`PLAIN_INTERVAL_S` seconds and when the work ends.
    """
    from tqdm import tqdm

    out = _PastCapture(config)
    quiet = config is not None and config.get_verbosity() < -1
    label = _short(label)
    start = time.monotonic()
    state: dict[str, Any] = {"bar": None, "last": None, "tty": None}

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        if quiet or now - start < QUIET_FOR_S:
            return
        if state["tty"] is None:
            state["tty"] = out.isatty()
        if state["tty"]:
            if state["bar"] is None:
                state["bar"] = tqdm(total=total, desc=f"[cryobench] {label}", file=out, mininterval=0.5,
                                    initial=0, leave=True, dynamic_ncols=True)
            bar = state["bar"]
            bar.total = total
            bar.update(done - bar.n)
            return
        if done < total and state["last"] is not None and now - state["last"] < PLAIN_INTERVAL_S:
            return
        if state["last"] is None:
            out.write("\n")  # off pytest's dots
        state["last"] = now
        meter = tqdm.format_meter(done, total, now - start, ncols=0)
        out.write(f"[cryobench] {label}: {meter}\n")

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].close()


def say(config: Any, text: str) -> None:
    """Print one ``[cryobench] text`` line past pytest's capture (regeneration reasons, waits)."""
    _PastCapture(config).write(f"\n[cryobench] {text}\n")
