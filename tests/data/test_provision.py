"""Provisioning of generated data: manifest, reuse, regeneration, lock, free space and verify."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from pytest_cryobench import profiles
from pytest_cryobench.data import movies, provision
from pytest_cryobench.data.sources import MovieSource
from pytest_cryobench.errors import CryobenchError, NotEnoughSpace

DiskUsage = collections.namedtuple("DiskUsage", "total used free")
TINY = dataclasses.replace(profiles.PROFILES["smoke"], name="tiny",
                           tiff=profiles.MovieSize(2, 64, 48, 5), mrc=profiles.MovieSize(2, 40, 32, 3))
FILES = ("hand/one.bin", "hand/sub/two.bin")


def content(name: str, tag: str = "v1") -> bytes:
    return (f"{tag}:{name}\n" * 7).encode()


class Hand:
    """A hand-made component whose generator writes known bytes and counts its calls."""

    def __init__(self, *, version: int = 1, params: dict | None = None, files: tuple[str, ...] = FILES,
                 tag: str = "v1", fail: BaseException | None = None, fail_on: str | None = None,
                 estimated: int = 10_000) -> None:
        self.calls: list[str] = []
        self.tag = tag
        self.fail = fail
        self.fail_on = fail_on
        self.component = provision.Component(
            name="hand", version=version, params=params if params is not None else {"n": 2, "shape": (3, 4)},
            files=files, estimated_bytes=estimated, generate=self.generate)

    def generate(self, name: str, tmp: Path, progress) -> dict:
        self.calls.append(name)
        data = content(name, self.tag)
        with open(tmp, "wb") as handle:
            handle.write(data[:10])  # a half-written file when failing
            handle.flush()
            if self.fail is not None and (self.fail_on is None or self.fail_on == name):
                raise self.fail
            handle.write(data[10:])
        progress(1, 1)
        return {"name": name, "length": len(data)}


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def manifest_of(root: Path) -> dict:
    return json.loads((root / provision.MANIFEST_NAME).read_text())


# --------------------------------------------------------------------------- ensure: first run

def test_ensure_generates_files_and_records_them(tmp_path):
    root = provision.data_root(tmp_path, "tiny")
    hand = Hand()
    messages: list[str] = []
    entry = provision.ensure(root, hand.component, 7, say=messages.append)

    assert hand.calls == list(FILES)
    assert root == tmp_path / "synthetic-tiny"
    for name in FILES:
        path = root / name
        assert path.read_bytes() == content(name)
        record = entry["files"][name]
        st = path.stat()
        assert record == {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                          "sha256": hashlib.sha256(content(name)).hexdigest()}
        assert entry["truth"][name] == {"name": name, "length": len(content(name))}
    assert entry["signature"] == {"version": 1, "seed": 7, "params": {"n": 2, "shape": [3, 4]}}

    doc = manifest_of(root)
    assert doc["kind"] == provision.MANIFEST_KIND
    assert doc["schema_version"] == provision.MANIFEST_SCHEMA_VERSION
    assert doc["profile"] == "tiny"
    assert doc["components"]["hand"]["files"] == entry["files"]
    assert doc["components"]["hand"]["truth"] == entry["truth"]
    assert provision.read_manifest(root) == doc
    # no temporary files left, only the data, the manifest and the lock
    assert all_files(root) == sorted([*FILES, provision.MANIFEST_NAME, provision.LOCK_NAME])
    # the first generation is not a "regeneration"
    assert not any("regenerating" in m for m in messages)
    assert any(m.startswith("generated hand:") for m in messages)


def test_ensure_reports_progress_per_file(tmp_path):
    hand = Hand()
    labels: list[str] = []
    updates: list[tuple[str, int, int]] = []

    @contextlib.contextmanager
    def progress_for(label):
        labels.append(label)
        yield lambda done, total: updates.append((label, done, total))

    provision.ensure(tmp_path, hand.component, 1, progress_for=progress_for)
    assert labels == [f"generating {name}" for name in FILES]
    assert updates == [(f"generating {name}", 1, 1) for name in FILES]


def test_sha256_of_matches_hashlib_across_chunks(tmp_path):
    path = tmp_path / "f"
    data = bytes(range(256)) * 41
    path.write_bytes(data)
    assert provision.sha256_of(path, chunk=1000) == hashlib.sha256(data).hexdigest()
    assert provision.sha256_of(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("fmt", ["tiff", "mrc"])
def test_ensure_generates_a_movie_component(tmp_path, fmt):
    import mrcfile
    import tifffile

    component = movies.movie_component(fmt, TINY, 11)
    size = getattr(TINY, fmt)
    entry = provision.ensure(tmp_path, component, 11)
    assert sorted(entry["files"]) == sorted(component.files)
    assert len(component.files) == size.n_movies
    for name in component.files:
        path = tmp_path / name
        assert entry["files"][name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["files"][name]["size"] == path.stat().st_size
        truth = entry["truth"][name]
        if fmt == "tiff":
            frames = tifffile.imread(path)
        else:
            with mrcfile.open(path) as mrc:
                frames = mrc.data.copy()
        assert frames.shape == (size.frames, size.height, size.width)
        assert truth["shape"] == [size.frames, size.height, size.width]
        assert truth["frame_sums"] == [int(s) for s in frames.sum(axis=(1, 2), dtype="int64")]
    # the manifest's truth is what a later run sees
    assert manifest_of(tmp_path)["components"][f"movies/{fmt}"]["truth"] == entry["truth"]


# --------------------------------------------------------------------------- ensure: reuse / regenerate

def test_second_ensure_reuses_without_generating(tmp_path):
    hand = Hand()
    first = provision.ensure(tmp_path, hand.component, 3)
    manifest_text = (tmp_path / provision.MANIFEST_NAME).read_text()
    messages: list[str] = []
    second = provision.ensure(tmp_path, hand.component, 3, say=messages.append)
    assert hand.calls == list(FILES)  # not called again
    assert second == json.loads(json.dumps(first))
    assert messages == []
    assert (tmp_path / provision.MANIFEST_NAME).read_text() == manifest_text
    # a fresh Component object with equal version/params/seed is reused too
    other = Hand()
    provision.ensure(tmp_path, other.component, 3)
    assert other.calls == []


def test_movie_component_is_reused(tmp_path):
    component = movies.movie_component("tiff", TINY, 5)
    provision.ensure(tmp_path, component, 5)
    calls = []
    wrapped = dataclasses.replace(component, generate=lambda *a: calls.append(a) or component.generate(*a))
    provision.ensure(tmp_path, wrapped, 5)
    assert calls == []


@pytest.mark.parametrize("change", ["seed", "params", "version"])
def test_other_seed_params_or_version_regenerates(tmp_path, change):
    provision.ensure(tmp_path, Hand().component, 3)
    kwargs = {"params": {"n": 3, "shape": (3, 4)}} if change == "params" else {}
    if change == "version":
        kwargs["version"] = 2
    hand = Hand(tag="v2", **kwargs)
    seed = 4 if change == "seed" else 3
    messages: list[str] = []
    entry = provision.ensure(tmp_path, hand.component, seed, say=messages.append)
    assert hand.calls == list(FILES)
    assert (tmp_path / FILES[0]).read_bytes() == content(FILES[0], "v2")
    assert entry["signature"] == hand.component.signature(seed)
    assert manifest_of(tmp_path)["components"]["hand"]["signature"] == hand.component.signature(seed)
    assert any("regenerating hand" in m and "other parameters or generator version" in m for m in messages)


def test_movie_seed_change_regenerates_other_data(tmp_path):
    a = provision.ensure(tmp_path, movies.movie_component("mrc", TINY, 1), 1)
    again = provision.ensure(tmp_path / "b", movies.movie_component("mrc", TINY, 1), 1)
    b = provision.ensure(tmp_path, movies.movie_component("mrc", TINY, 2), 2)
    assert again["truth"] == a["truth"]  # deterministic per seed
    assert b["truth"] != a["truth"]
    assert manifest_of(tmp_path)["components"]["movies/mrc"]["signature"]["seed"] == 2


def test_touched_file_regenerates_and_says_why(tmp_path):
    provision.ensure(tmp_path, Hand().component, 3)
    path = tmp_path / FILES[1]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))
    hand = Hand()
    messages: list[str] = []
    entry = provision.ensure(tmp_path, hand.component, 3, say=messages.append)
    assert hand.calls == list(FILES)
    reason = [m for m in messages if m.startswith("regenerating")]
    assert len(reason) == 1
    assert str(path) in reason[0] and "changed since it was generated" in reason[0]
    assert entry["files"][FILES[1]]["mtime_ns"] == path.stat().st_mtime_ns


def test_changed_size_regenerates_and_says_why(tmp_path):
    provision.ensure(tmp_path, Hand().component, 3)
    path = tmp_path / FILES[0]
    st = path.stat()
    with open(path, "ab") as handle:
        handle.write(b"x")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the size differs
    hand = Hand()
    messages: list[str] = []
    provision.ensure(tmp_path, hand.component, 3, say=messages.append)
    assert hand.calls == list(FILES)
    assert path.read_bytes() == content(FILES[0])
    assert any(str(path) in m and "size" in m for m in messages if m.startswith("regenerating"))


def test_deleted_file_regenerates(tmp_path):
    provision.ensure(tmp_path, Hand().component, 3)
    path = tmp_path / FILES[1]
    path.unlink()
    hand = Hand()
    messages: list[str] = []
    provision.ensure(tmp_path, hand.component, 3, say=messages.append)
    assert hand.calls == list(FILES)
    assert path.read_bytes() == content(FILES[1])
    assert any(f"{path} is missing" in m for m in messages)


def test_a_new_file_in_the_component_regenerates(tmp_path):
    provision.ensure(tmp_path, Hand(files=FILES[:1]).component, 3)
    hand = Hand()
    messages: list[str] = []
    provision.ensure(tmp_path, hand.component, 3, say=messages.append)
    assert hand.calls == list(FILES)
    assert any(f"{FILES[1]} is not in the manifest" in m for m in messages)


def test_components_share_one_manifest(tmp_path):
    hand = Hand()
    provision.ensure(tmp_path, hand.component, 3)
    provision.ensure(tmp_path, movies.movie_component("tiff", TINY, 3), 3)
    assert sorted(manifest_of(tmp_path)["components"]) == ["hand", "movies/tiff"]
    provision.ensure(tmp_path, hand.component, 3)
    assert hand.calls == list(FILES)  # still reused after the other component was added


# --------------------------------------------------------------------------- ensure: failures

@pytest.mark.parametrize("exc", [RuntimeError("generator broke"), KeyboardInterrupt()],
                         ids=["error", "ctrl-c"])
def test_failing_first_generation_leaves_nothing(tmp_path, exc):
    hand = Hand(fail=exc, fail_on=FILES[1])
    with pytest.raises(type(exc)):
        provision.ensure(tmp_path, hand.component, 3)
    # the first file was completed, the second neither half-written nor left as a temporary
    assert all_files(tmp_path) == sorted([FILES[0], provision.LOCK_NAME])
    assert not (tmp_path / provision.MANIFEST_NAME).exists()
    # the lock was released: a later ensure works, and generates everything
    good = Hand()
    provision.ensure(tmp_path, good.component, 3)
    assert good.calls == list(FILES)


@pytest.mark.parametrize("exc", [RuntimeError("generator broke"), KeyboardInterrupt()],
                         ids=["error", "ctrl-c"])
def test_failing_regeneration_keeps_old_files_and_manifest(tmp_path, exc):
    provision.ensure(tmp_path, Hand().component, 3)
    manifest_text = (tmp_path / provision.MANIFEST_NAME).read_text()
    before = {name: (tmp_path / name).read_bytes() for name in FILES}
    hand = Hand(version=2, tag="version-two", fail=exc)  # fails on the first file
    with pytest.raises(type(exc)):
        provision.ensure(tmp_path, hand.component, 3)
    assert hand.calls == [FILES[0]]
    assert {name: (tmp_path / name).read_bytes() for name in FILES} == before
    assert (tmp_path / provision.MANIFEST_NAME).read_text() == manifest_text
    assert all_files(tmp_path) == sorted([*FILES, provision.MANIFEST_NAME, provision.LOCK_NAME])
    # the old data is still valid and reused by the old component
    old = Hand()
    provision.ensure(tmp_path, old.component, 3)
    assert old.calls == []


def test_half_done_regeneration_is_not_reused(tmp_path):
    provision.ensure(tmp_path, Hand().component, 3)
    manifest_text = (tmp_path / provision.MANIFEST_NAME).read_text()
    failing = Hand(version=2, tag="a-longer-version-two", fail=RuntimeError("boom"), fail_on=FILES[1])
    with pytest.raises(RuntimeError):
        provision.ensure(tmp_path, failing.component, 3)
    assert (tmp_path / provision.MANIFEST_NAME).read_text() == manifest_text
    # FILES[0] now holds version-two bytes: the old entry must not accept it
    old = Hand()
    messages: list[str] = []
    provision.ensure(tmp_path, old.component, 3, say=messages.append)
    assert old.calls == list(FILES)
    assert (tmp_path / FILES[0]).read_bytes() == content(FILES[0])
    assert any(str(tmp_path / FILES[0]) in m for m in messages)


def test_not_enough_space_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr("pytest_cryobench.measure.fsutil.shutil.disk_usage",
                        lambda path: DiskUsage(10**9, 10**9 - 5000, 5000))
    hand = Hand(estimated=1_000_000)
    root = tmp_path / "synthetic-tiny"
    with pytest.raises(NotEnoughSpace) as info:
        provision.ensure(root, hand.component, 3)
    assert str(root) in str(info.value) and "hand" in str(info.value)
    assert hand.calls == []
    assert all_files(root) == [provision.LOCK_NAME]


def test_not_enough_space_for_regeneration_keeps_old_data(tmp_path, monkeypatch):
    provision.ensure(tmp_path, Hand().component, 3)
    manifest_text = (tmp_path / provision.MANIFEST_NAME).read_text()
    monkeypatch.setattr("pytest_cryobench.measure.fsutil.shutil.disk_usage",
                        lambda path: DiskUsage(10**9, 10**9, 0))
    hand = Hand(version=2, tag="v2")
    with pytest.raises(NotEnoughSpace):
        provision.ensure(tmp_path, hand.component, 3)
    assert hand.calls == []
    assert (tmp_path / FILES[0]).read_bytes() == content(FILES[0])
    assert (tmp_path / provision.MANIFEST_NAME).read_text() == manifest_text


def test_enough_space_is_checked_against_the_estimate(tmp_path, monkeypatch):
    seen = []

    def usage(path):
        seen.append(Path(path))
        return DiskUsage(10**9, 0, 10**6)

    monkeypatch.setattr("pytest_cryobench.measure.fsutil.shutil.disk_usage", usage)
    hand = Hand(estimated=10**6 // 2)
    provision.ensure(tmp_path, hand.component, 3)
    assert hand.calls == list(FILES)
    assert seen and all(p == tmp_path for p in seen)


# --------------------------------------------------------------------------- lock

def _hold_lock(root: Path, held: threading.Event, release: threading.Event, order: list[str]) -> None:
    with provision.locked(root):
        held.set()
        release.wait(10)
        order.append("holder releases")


def test_second_locked_waits_and_says_so(tmp_path):
    held, release, order = threading.Event(), threading.Event(), []
    holder = threading.Thread(target=_hold_lock, args=(tmp_path, held, release, order))
    holder.start()
    try:
        assert held.wait(10)
        messages: list[str] = []

        def say(text):
            messages.append(text)
            release.set()  # let the holder go only once we are waiting

        with provision.locked(tmp_path, say):
            order.append("second acquires")
    finally:
        release.set()
        holder.join(10)
    assert messages == [f"waiting for another run that is generating data in {tmp_path}"]
    assert order == ["holder releases", "second acquires"]


def test_uncontended_lock_says_nothing_and_can_be_retaken(tmp_path):
    root = tmp_path / "new" / "root"
    messages: list[str] = []
    with provision.locked(root, messages.append):
        assert (root / provision.LOCK_NAME).exists()
    with provision.locked(root, messages.append):
        pass
    assert messages == []


def test_lock_is_released_on_error(tmp_path):
    with pytest.raises(ValueError), provision.locked(tmp_path):
        raise ValueError("inside")
    messages: list[str] = []
    with provision.locked(tmp_path, messages.append):
        pass
    assert messages == []


def test_ensure_waits_for_the_lock(tmp_path):
    held, release, order = threading.Event(), threading.Event(), []
    holder = threading.Thread(target=_hold_lock, args=(tmp_path, held, release, order))
    holder.start()
    hand = Hand()
    messages: list[str] = []

    def say(text):
        messages.append(text)
        release.set()

    try:
        assert held.wait(10)
        provision.ensure(tmp_path, hand.component, 3, say=say)
    finally:
        release.set()
        holder.join(10)
    assert any("waiting for another run" in m for m in messages)
    assert hand.calls == list(FILES)
    assert order == ["holder releases"]


# --------------------------------------------------------------------------- verify

def test_verify_intact_data_is_ok(tmp_path):
    provision.ensure(tmp_path, Hand().component, 3)
    provision.ensure(tmp_path, movies.movie_component("tiff", TINY, 3), 3)
    report = provision.verify(tmp_path, {"movies/tiff": movies.check_tiff})
    assert report.ok, report.problems
    assert report.problems == []
    assert report.checked == len(FILES) + TINY.tiff.n_movies


def test_verify_catches_a_changed_byte_with_the_old_mtime(tmp_path):
    provision.ensure(tmp_path, Hand().component, 3)
    path = tmp_path / FILES[0]
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[5] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    # a run would not notice (size and time match), verify does
    entry = provision.read_manifest(tmp_path)["components"]["hand"]
    assert provision.stale_reason(tmp_path, entry, Hand().component, 3) is None
    report = provision.verify(tmp_path)
    assert not report.ok
    assert report.problems == [f"{path}: checksum differs from the manifest"]
    assert report.checked == len(FILES)


def test_verify_names_missing_and_resized_files(tmp_path):
    provision.ensure(tmp_path, Hand().component, 3)
    missing, resized = tmp_path / FILES[0], tmp_path / FILES[1]
    missing.unlink()
    resized.write_bytes(b"short")
    report = provision.verify(tmp_path)
    assert report.checked == 2
    assert report.problems == [f"{missing}: missing",
                               f"{resized}: size 5, manifest says {len(content(FILES[1]))}"]


def test_verify_reports_unreadable_content_from_the_reader(tmp_path):
    hand = Hand()
    hand.component = dataclasses.replace(hand.component, name="movies/tiff", files=("movies/tiff/fake.tiff",))
    provision.ensure(tmp_path, hand.component, 3)
    report = provision.verify(tmp_path, {"movies/tiff": movies.check_tiff})
    assert len(report.problems) == 1
    assert str(tmp_path / "movies/tiff/fake.tiff") in report.problems[0]
    # without a reader only checksums are checked
    assert provision.verify(tmp_path).ok


@pytest.mark.parametrize("make", [False, True], ids=["missing-dir", "empty-dir"])
def test_verify_without_data_says_how_to_generate(tmp_path, make):
    root = tmp_path / "synthetic-smoke"
    if make:
        root.mkdir()
    report = provision.verify(root)
    assert not report.ok and report.checked == 0
    assert len(report.problems) == 1
    assert str(root) in report.problems[0] and "run 'cryobench data generate'" in report.problems[0]


# --------------------------------------------------------------------------- manifest

def test_corrupt_manifest_is_an_error_naming_it(tmp_path):
    path = tmp_path / provision.MANIFEST_NAME
    path.write_text('{"kind": "cryobench-data", "components": {')
    for call in (lambda: provision.read_manifest(tmp_path), lambda: provision.verify(tmp_path),
                 lambda: provision.ensure(tmp_path, Hand().component, 3)):
        with pytest.raises(CryobenchError) as info:
            call()
        assert str(path) in str(info.value) and "delete it" in str(info.value)
    assert not (tmp_path / FILES[0]).exists()


def test_binary_garbage_manifest_is_an_error_naming_it(tmp_path):
    path = tmp_path / provision.MANIFEST_NAME
    path.write_bytes(b"\xff\xfe\x00\x89garbage\x80")
    with pytest.raises(CryobenchError, match="cannot be read"):
        provision.read_manifest(tmp_path)


@pytest.mark.parametrize("text", ["[]", "null", "42"])
def test_manifest_that_is_not_an_object_is_an_error_naming_it(tmp_path, text):
    path = tmp_path / provision.MANIFEST_NAME
    path.write_text(text)
    with pytest.raises(CryobenchError) as info:
        provision.read_manifest(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("components", [None, [], "x"], ids=["absent", "list", "string"])
def test_manifest_without_components_is_an_error_or_regenerates(tmp_path, components):
    path = tmp_path / provision.MANIFEST_NAME
    doc = {"kind": provision.MANIFEST_KIND, "schema_version": provision.MANIFEST_SCHEMA_VERSION}
    if components is not None:
        doc["components"] = components
    path.write_text(json.dumps(doc))
    hand = Hand()
    try:
        provision.ensure(tmp_path, hand.component, 3)
    except CryobenchError as exc:
        assert str(path) in str(exc)
    else:
        assert hand.calls == list(FILES)
    try:
        report = provision.verify(tmp_path)
    except CryobenchError as exc:
        assert str(path) in str(exc)
    else:
        assert report.checked == len(FILES) or not report.ok


@pytest.mark.parametrize("header", [{"kind": provision.MANIFEST_KIND, "schema_version": 999},
                                    {"kind": "something-else", "schema_version": 1}, {}])
def test_manifest_of_another_schema_is_treated_as_empty(tmp_path, header):
    hand = Hand()
    provision.ensure(tmp_path, hand.component, 3)
    doc = manifest_of(tmp_path)
    doc.pop("kind")
    doc.pop("schema_version")
    doc.update(header)
    (tmp_path / provision.MANIFEST_NAME).write_text(json.dumps(doc))

    assert provision.read_manifest(tmp_path)["components"] == {}
    assert not provision.verify(tmp_path).ok
    again = Hand()
    provision.ensure(tmp_path, again.component, 3)
    assert again.calls == list(FILES)  # regenerated, not trusted
    new = manifest_of(tmp_path)
    assert new["schema_version"] == provision.MANIFEST_SCHEMA_VERSION and new["kind"] == provision.MANIFEST_KIND


# --------------------------------------------------------------------------- sources

def test_movie_source_generates_and_gives_truth(tmp_path):
    source = MovieSource(TINY, tmp_path, None, 9, lambda label: contextlib.nullcontext(lambda d, t: None),
                         lambda text: None)
    files = source.files("tiff")
    assert files == [tmp_path / "synthetic-tiny" / name for name in movies.movie_names("tiff", TINY.tiff)]
    sums, _ = movies.decode_tiff(files[1], 1)
    assert source.truth("tiff", files[1])["frame_sums"] == sums.tolist()
    assert not source.real


def test_movie_source_of_a_real_data_set(tmp_path):
    (tmp_path / "movies" / "mrc").mkdir(parents=True)
    for name in ("b.mrc", "a.mrc"):
        (tmp_path / "movies" / "mrc" / name).write_bytes(b"x")
    source = MovieSource(TINY, tmp_path / "unused", tmp_path, 9, contextlib.nullcontext, lambda text: None)
    assert source.files("mrc") == [tmp_path / "movies/mrc/a.mrc", tmp_path / "movies/mrc/b.mrc"]
    assert source.truth("mrc", tmp_path / "movies/mrc/a.mrc") is None
    assert not (tmp_path / "unused").exists()
