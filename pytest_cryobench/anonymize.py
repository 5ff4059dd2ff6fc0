"""Strip host names, bus ids, user names and paths from result files before sharing them."""

from __future__ import annotations

import copy
import os
from typing import Any

REDACTED = "<redacted>"
_HOST_KEYS = {"platform_node", "user"}
_BUS_KEYS = {"gpu_bus_id", "bus_id"}
_PATH_KEYS = {"project_dir", "cache_dir", "benchmark_data_dir", "project_dir_mountpoint",
              "cache_dir_mountpoint", "project_dir_device", "cache_dir_device", "command", "nodeid",
              "source"}
_REDACT_KEYS = _HOST_KEYS | _BUS_KEYS | _PATH_KEYS


def _secrets(value: Any, found: set[str]) -> None:
    """Collect the values of identifying keys, to scrub them from free text as well."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _REDACT_KEYS and isinstance(item, str) and len(item) > 1 and key != "command":
                found.add(item)
            _secrets(item, found)
    elif isinstance(value, list):
        for item in value:
            _secrets(item, found)


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {key: REDACTED if key in _REDACT_KEYS and item is not None else _scrub(item, secrets)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
    return value


def anonymize_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a result or reference document without identifying fields.

    Host name, user, GPU bus ids, the directories used and the command line are replaced by
    ``"<redacted>"``, also where they appear inside other text (failure reasons, notes); the home
    directory is scrubbed from text too. Timings, hardware models and versions stay.
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
