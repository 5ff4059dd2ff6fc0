"""Directory checks, free space, filesystem identity, atomic writes and file copies."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pytest_cryobench.errors import DirectoryError, NotEnoughSpace

GB = 1e9


def human_bytes(n: float) -> str:
    """``1234567890`` -> ``'1.23 GB'`` (decimal units, as disk makers and ``df -H`` use)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def ensure_writable_dir(path: Path, what: str, *, create: bool = True) -> Path:
    """Make sure ``path`` is a directory this process can create files in.

    Parameters
    ----------
    path : Path
        The directory.
    what : str
        How to name it in messages, e.g. ``"project dir (--cryobench-project-dir)"``.
    create : bool
        Create it (and parents) if missing; if False a missing directory is an error.

    Raises
    ------
    DirectoryError
        Missing (with ``create=False``), not a directory, or not writable; the message names it.
    """
    if not path.exists():
        if not create:
            raise DirectoryError(f"{what} {path} does not exist: create it or choose another directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DirectoryError(f"{what} {path} cannot be created: {exc.strerror}") from None
    if not path.is_dir():
        raise DirectoryError(f"{what} {path} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".cryobench-probe-"):
            pass
    except OSError as exc:
        raise DirectoryError(f"{what} {path} is not writable: {exc.strerror}") from None
    return path


def free_bytes(path: Path) -> int:
    """Bytes available to this user on the filesystem holding ``path``."""
    return shutil.disk_usage(path).free


def require_free_space(path: Path, needed: int, what: str, *, margin: float = 1.05) -> None:
    """Refuse before writing when the filesystem of ``path`` lacks ``needed`` bytes (plus 5%).

    Raises
    ------
    NotEnoughSpace
        The message names the directory, the bytes needed and the bytes free.
    """
    free = free_bytes(path)
    if free < needed * margin:
        raise NotEnoughSpace(
            f"not enough free space in {what} {path}: needs {human_bytes(needed * margin)} "
            f"({int(needed * margin)} bytes), {human_bytes(free)} ({free} bytes) free. "
            "Free some space, choose another directory, or use a smaller --cryobench-profile")


FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def no_space_error(directory: Path, needed: int) -> NotEnoughSpace:
    """The one message for a disk that filled while writing: ``no space left on <dir> (needed X, free Y)``."""
    try:
        free = human_bytes(free_bytes(directory))
    except OSError:
        free = "unknown"
    return NotEnoughSpace(f"no space left on {directory} (needed {human_bytes(needed)}, free {free}); "
                          "free some space, choose another directory, or use a smaller --cryobench-profile")


@contextlib.contextmanager
def reporting_full_disk(directory: Path, needed: int) -> Iterator[None]:
    """Turn an ``ENOSPC``/``EDQUOT`` raised inside into :func:`no_space_error` for ``directory``.

    The caller removes what it wrote; other ``OSError`` pass through unchanged.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno in FULL_DISK_ERRNOS:
            raise no_space_error(directory, needed) from None
        raise


def preallocate(path: Path, start: int = 0) -> None:
    """Reserve the blocks of ``path`` from byte ``start`` to its current end (``posix_fallocate``).

    A file that is then written through a memory map cannot hit a full disk as a ``SIGBUS``: the
    space exists before the first page is touched, or this raises ``OSError(ENOSPC)`` instead.
    Where the filesystem has no ``fallocate`` the range (still a hole, never written) is filled
    with zeros instead.
    """
    size = os.stat(path).st_size
    fd = os.open(path, os.O_RDWR)
    try:
        if size > start:
            try:
                os.posix_fallocate(fd, start, size - start)
            except OSError as exc:
                if exc.errno in FULL_DISK_ERRNOS:
                    raise
                _write_zeros(fd, start, size)  # EOPNOTSUPP, EINVAL: allocate by writing
    finally:
        os.close(fd)


def _write_zeros(fd: int, start: int, end: int, chunk: int = 16 << 20) -> None:
    zeros = bytes(min(chunk, end - start))
    done = start
    while done < end:
        done += os.pwrite(fd, zeros[:min(chunk, end - done)], done)


def filesystem_of(path: Path) -> dict[str, str | None]:
    """Filesystem type, device and mount point of the filesystem holding ``path``.

    Returns
    -------
    dict
        ``{"fstype": "ext4", "device": "/dev/nvme0n1p2", "mountpoint": "/"}``; values are
        ``None`` when the mount table cannot be read.
    """
    import psutil

    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    real = os.path.realpath(probe)
    best = None
    try:
        partitions = psutil.disk_partitions(all=True)
    except OSError:
        partitions = []
    for part in partitions:
        mount = part.mountpoint
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) > len(best.mountpoint)):
            best = part
    if best is None:
        return {"fstype": None, "device": None, "mountpoint": None}
    return {"fstype": best.fstype, "device": best.device, "mountpoint": best.mountpoint}


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator:
    """Write ``path`` through a temporary file in the same directory, renamed into place on success.

    An exception (Ctrl-C included) leaves any earlier ``path`` untouched and no temporary behind.
    A symbolic link is written through (its target is replaced, the link stays); anything else
    that is not a regular file (a device, a FIFO, a directory) is refused with an ``OSError``.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        import errno

        raise OSError(errno.EINVAL, "not a regular file; give a file name", str(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"newline": ""} if "b" not in mode else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; result files follow the umask
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_COPY_CHUNK = 1 << 30


def copy_file(src: Path, dst: Path) -> int:
    """Copy one file the way ``cp`` does on Linux (``copy_file_range``, else ``sendfile``).

    Returns
    -------
    int
        Bytes copied.
    """
    size = os.stat(src).st_size
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        copied = 0
        if hasattr(os, "copy_file_range"):
            try:
                while copied < size:
                    n = os.copy_file_range(fin.fileno(), fout.fileno(), min(_COPY_CHUNK, size - copied))
                    if n == 0:
                        break
                    copied += n
            except OSError as exc:
                if exc.errno in FULL_DISK_ERRNOS:
                    raise
                copied = 0
                fin.seek(0)
                fout.seek(0)
                fout.truncate()
        if copied < size:
            fout.seek(copied)
            fin.seek(copied)
            shutil.copyfileobj(fin, fout, 16 << 20)
            copied = size
    return copied
