"""Progress lines for long, untimed work (data generation), shown past pytest's output capture."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def progress(config: Any, label: str) -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(done, total)`` that rewrites one terminal line at most every 0.5 s.

    Output goes around pytest's capture (through the capture manager's public switch) so that a
    user sees generation advance; with ``-q -q`` or no terminal it stays silent.
    """
    capman = config.pluginmanager.getplugin("capturemanager") if config is not None else None
    quiet = config is not None and config.get_verbosity() < -1
    last = [0.0]
    start = time.monotonic()

    def write(text: str) -> None:
        if quiet:
            return
        ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
        with ctx:
            sys.stderr.write(text)
            sys.stderr.flush()

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        # Quiet for work that finishes within half a second; then at most two updates a second.
        if now - start < 0.5 or (done < total and now - last[0] < 0.5):
            return
        first = last[0] == 0.0
        last[0] = now
        write(("\n" if first else "") + f"\r[cryobench] {label}: {done}/{total} ({now - start:.1f} s)")
        if done >= total:
            write("\n")

    yield update


def say(config: Any, text: str) -> None:
    """Print one ``[cryobench]`` line past pytest's capture (regeneration reasons, waits)."""
    capman = config.pluginmanager.getplugin("capturemanager") if config is not None else None
    ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
    with ctx:
        sys.stderr.write(f"\n[cryobench] {text}\n")
        sys.stderr.flush()
