"""``.cs`` datasets: our NumPy writer and reader, cross-checked with cryosparc-tools."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_cryobench.data.cs import make_dataset, read_cs, write_cs
from pytest_cryobench.errors import CryobenchError

Dataset = pytest.importorskip("cryosparc.dataset", reason="cryosparc-tools (the test extra) is not installed").Dataset


def _particles(n=7):
    rng = np.random.default_rng(1)
    return make_dataset({
        "blob/path": np.array([f"J1/extract/mic_{i % 3}_particles.mrc" for i in range(n)]),
        "blob/idx": np.arange(n, dtype=np.uint32),
        "blob/shape": np.tile(np.array([64, 64], dtype=np.uint32), (n, 1)),
        "blob/psize_A": np.full(n, 1.5, dtype=np.float32),
        "alignments3D/pose": rng.normal(size=(n, 3)).astype(np.float32),
        "alignments3D/shift": rng.normal(size=(n, 2)).astype(np.float32),
        "ctf/df1_A": rng.uniform(8000, 20000, n).astype(np.float32),
        "ctf/accel_kv": np.full(n, 300.0, dtype=np.float32),
    }, uid_seed=4)


def test_cryosparc_tools_reads_what_we_write(tmp_path):
    data = _particles()
    path = tmp_path / "particles.cs"
    write_cs(path, data)
    theirs = Dataset.load(str(path))
    assert len(theirs) == 7
    for field in data.dtype.names:
        if field == "blob/path":
            assert [str(s) for s in theirs[field]] == [s.decode() for s in data[field]]
        else:
            np.testing.assert_array_equal(np.asarray(theirs[field]), data[field])


def test_we_read_what_cryosparc_tools_writes(tmp_path):
    theirs = Dataset.allocate(5, [("alignments3D/pose", "f4", (3,)), ("blob/idx", "u4"),
                                  ("blob/path", "O")])
    theirs["alignments3D/pose"] = np.arange(15, dtype=np.float32).reshape(5, 3)
    theirs["blob/idx"] = np.arange(5)
    theirs["blob/path"] = ["a.mrc"] * 5
    path = tmp_path / "theirs.cs"
    theirs.save(str(path))
    ours = read_cs(path, required=("uid", "alignments3D/pose", "blob/idx"))
    np.testing.assert_array_equal(ours["alignments3D/pose"], np.arange(15, dtype=np.float32).reshape(5, 3))
    np.testing.assert_array_equal(ours["uid"], np.asarray(theirs["uid"]))
    assert [s.decode() for s in ours["blob/path"]] == ["a.mrc"] * 5


def test_missing_fields_are_named(tmp_path):
    path = tmp_path / "p.cs"
    write_cs(path, _particles())
    with pytest.raises(CryobenchError, match=r"p\.cs: the dataset lacks field\(s\) alignments3D/pose_err, ctf/cs_mm"):
        read_cs(path, required=("alignments3D/pose", "alignments3D/pose_err", "ctf/cs_mm"))


@pytest.mark.parametrize("content, words", [
    (b"not numpy at all", "not a .cs dataset"),
    (b"\x95CSDAT\x00\x00", "compressed CSDAT"),
])
def test_not_a_dataset(tmp_path, content, words):
    path = tmp_path / "bad.cs"
    path.write_bytes(content)
    with pytest.raises(CryobenchError, match=words):
        read_cs(path)


def test_truncated_dataset(tmp_path):
    path = tmp_path / "t.cs"
    write_cs(path, _particles(1000))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CryobenchError, match=r"t\.cs: damaged or truncated"):
        read_cs(path)


def test_plain_array_is_not_a_dataset(tmp_path):
    path = tmp_path / "plain.cs"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(CryobenchError, match="without named fields"):
        read_cs(path)


def test_columns_must_agree(tmp_path):
    with pytest.raises(ValueError, match="different lengths"):
        make_dataset({"a": np.zeros(3), "b": np.zeros(4)})
