"""Strip host names, bus ids, user names and paths from result files before sharing them."""

from __future__ import annotations

import copy
import os
import re
import shlex
from typing import Any

REDACTED = "<redacted>"
_HOST_KEYS = {"platform_node", "user"}
_BUS_KEYS = {"gpu_bus_id", "bus_id"}
_PATH_KEYS = {"project_dir", "cache_dir", "benchmark_data_dir", "project_dir_mountpoint",
              "cache_dir_mountpoint", "project_dir_device", "cache_dir_device", "nodeid", "source"}
_REDACT_KEYS = _HOST_KEYS | _BUS_KEYS | _PATH_KEYS
# Command lines keep their options (they say how a figure was measured) but lose their paths.
_COMMAND_KEYS = {"command", "reference_command"}
_PATH_ARG = re.compile(r"^(?P<opt>-[^=]*=)?(?P<path>[~.]?/.*)$")
# Paths inside free text (failure reasons, notes) that no field named: relative ones
# (``../venv/lib/x.py:383``, ``./data/x``, ``~/x``) and absolute ones of two or more parts
# (``/home/alice/x``). A slash inside a word (``MB/s``, ``fs/mrc``) or a URL is no path.
_TEXT_PATH = re.compile(r"(?<![\w.~/:-])(?:\.\.?/|~/|/(?=[^\s/]+/))[^\s'\",;()\[\]<>]+?"
                        r"(?=:?(?:[\s'\",;()\[\]<>]|$))")


def _scrub_command(command: str, secrets: list[str]) -> str:
    """``command`` with every path argument (``/x``, ``~/x``, ``./x``, ``--opt=/x``) replaced."""
    try:
        parts = shlex.split(command)
    except ValueError:  # unbalanced quotes: nothing can be told apart safely
        return REDACTED
    out = []
    for part in parts:
        match = _PATH_ARG.match(part)
        if match:
            part = (match["opt"] or "") + REDACTED
        out.append(_scrub(part, secrets))
    return " ".join(shlex.quote(part) if part != REDACTED and not part.endswith("=" + REDACTED) else part
                    for part in out)


def _identifying(key: str, item: Any) -> bool:
    """Whether ``item`` under ``key`` identifies a machine or a person: host names and bus ids
    always; a path key's value only when it is a path (``source: "synthetic"`` is not)."""
    if not isinstance(item, str):
        return item is not None and key in _HOST_KEYS | _BUS_KEYS
    if key in _PATH_KEYS:
        return "/" in item or ":" in item
    return key in _HOST_KEYS | _BUS_KEYS


def _secrets(value: Any, found: set[str]) -> None:
    """Collect identifying values to scrub from free text as well: paths, host names and bus ids
    (a user name is redacted in its field only; scrubbing "root" from text would garble it)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "user" and _identifying(key, item) and isinstance(item, str) and len(item) > 1:
                found.add(item)
            _secrets(item, found)
    elif isinstance(value, list):
        for item in value:
            _secrets(item, found)


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {key: REDACTED if _identifying(key, item)
                else _scrub_command(item, secrets) if key in _COMMAND_KEYS and isinstance(item, str)
                else _scrub(item, secrets)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    if isinstance(value, str):
        for secret in secrets:  # whole words only: a host "vm" must not eat "vmlinuz"
            value = re.sub(rf"(?<![\w.-]){re.escape(secret)}(?![\w-])", REDACTED, value)
        value = _TEXT_PATH.sub(REDACTED, value)
    return value


def anonymize_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a result or reference document without identifying fields.

    Host name, user, GPU bus ids and the directories used are replaced by ``"<redacted>"``, also
    where they appear inside other text (failure reasons, notes); the home directory and any
    other path in free text (relative ones like ``../venv/lib/...`` included) are scrubbed too.
    Command lines keep their options but lose every path argument. Timings, hardware models and
    versions stay.
    """
    found: set[str] = set()
    _secrets(doc, found)
    home = os.path.expanduser("~")
    if home not in ("/", "~"):
        found.add(home)
    # Longest first, so that a directory is replaced before its parent.
    out = _scrub(copy.deepcopy(doc), sorted(found, key=len, reverse=True))
    if isinstance(out.get("test_info"), dict):
        out["test_info"]["anonymized"] = True
    else:
        out["anonymized"] = True
    return out
