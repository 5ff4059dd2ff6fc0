"""Strip host names, bus ids, user names and paths from result files before sharing them."""

from __future__ import annotations

import copy
from typing import Any

REDACTED = "<redacted>"
_HOST_KEYS = {"platform_node", "user"}
_BUS_KEYS = {"gpu_bus_id", "bus_id"}
_PATH_KEYS = {"project_dir", "cache_dir", "benchmark_data_dir", "project_dir_mountpoint",
              "cache_dir_mountpoint", "project_dir_device", "cache_dir_device", "command", "nodeid"}


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _HOST_KEYS | _BUS_KEYS | _PATH_KEYS and item is not None:
                out[key] = REDACTED
            else:
                out[key] = _scrub(item)
        return out
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def anonymize_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a result or reference document without identifying fields.

    Host name, user, GPU bus ids, the directories used and the command line are replaced by
    ``"<redacted>"``; timings, hardware models and versions stay.
    """
    out = _scrub(copy.deepcopy(doc))
    out.setdefault("test_info", {})
    if isinstance(out.get("test_info"), dict):
        out["test_info"]["anonymized"] = True
    return out
