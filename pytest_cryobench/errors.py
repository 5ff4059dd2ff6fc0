"""Errors the user can act on. Each message names the file or option and what to do."""

from __future__ import annotations


class CryobenchError(Exception):
    """A problem with the user's input or machine, reported as one clear message (no traceback)."""


class NotEnoughSpace(CryobenchError):
    """A directory has less free space than a data set needs."""


class DirectoryError(CryobenchError):
    """A directory is missing, not a directory, or not writable."""


class ResultFileError(CryobenchError):
    """A reference or baseline file cannot be read or fails its schema."""


class PageCacheError(CryobenchError):
    """The page cache cannot be dropped the way the user asked."""


class CryobenchWarning(UserWarning):
    """A figure that may not mean what it says (e.g. a cold read that was warm)."""
