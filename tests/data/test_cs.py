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


# -- CryoSPARC's full field set, written by cryosparc-tools ----------------------------------------

def _exposures(names, df1):
    from pytest_cryobench.data.cs import CTF_BLOCK, MICROGRAPH_BLOB_BLOCK, full_block_columns

    return make_dataset(full_block_columns(len(names), (MICROGRAPH_BLOB_BLOCK, CTF_BLOCK), {
        "micrograph_blob/path": np.array(names), "ctf/df1_A": np.array(df1), "ctf/df2_A": np.array(df1) - 300,
        "ctf/df_angle_rad": 0.4, "ctf/accel_kv": 300.0, "ctf/cs_mm": 2.7, "ctf/amp_contrast": 0.07,
        "ctf/shift_A": np.array([1.0, 2.0]), "ctf/anisomag": np.array([1.01, 0.0, 0.0, 0.99]),
    }), uid_seed=3)


def test_cryosparc_tools_writes_the_ctf_block_we_generate(tmp_path):
    from tests.helpers import save_with_cryosparc_tools

    ours = _exposures(["J2/motioncorrected/a_doseweighted.mrc"], [15_000.0])
    save_with_cryosparc_tools(tmp_path / "tools.cs", ours)
    theirs = np.load(tmp_path / "tools.cs")
    assert theirs.dtype.names == ours.dtype.names
    assert theirs.dtype["ctf/type"].kind == "S" and theirs.dtype["ctf/anisomag"].shape == (4,)
    assert theirs.dtype["ctf/shift_A"].shape == (2,) and theirs.dtype["ctf/trefoil_A"].shape == (2,)


def test_exposure_ctfs_are_matched_by_micrograph_path_not_order(tmp_path):
    from pytest_cryobench.data.picking import read_exposure_ctfs
    from tests.helpers import save_with_cryosparc_tools

    path = tmp_path / "exposure_dataset_for_picking.cs"
    save_with_cryosparc_tools(path, _exposures(["J2/motioncorrected/b_doseweighted.mrc",
                                                "J2/motioncorrected/a_doseweighted.mrc"], [20_000.0, 10_000.0]))
    ctfs = read_exposure_ctfs(path, [tmp_path / "a_doseweighted.mrc", tmp_path / "b_doseweighted.mrc"])
    assert [c["df1_A"] for c in ctfs] == [10_000.0, 20_000.0]
    assert ctfs[0] == {"df1_A": 10_000.0, "df2_A": 9_700.0, "df_angle_rad": pytest.approx(0.4), "accel_kv": 300.0,
                       "cs_mm": pytest.approx(2.7), "amp_contrast": pytest.approx(0.07)}
    with pytest.raises(CryobenchError, match=r"exposure_dataset_for_picking.cs: no exposure row\(s\) whose "
                                             r"micrograph_blob/path ends in c_doseweighted.mrc"):
        read_exposure_ctfs(path, [tmp_path / "c_doseweighted.mrc"])


def test_an_exposure_file_without_the_kernels_ctf_fields_is_refused_by_name(tmp_path):
    import numpy.lib.recfunctions as rfn

    from pytest_cryobench.data.picking import read_exposure_ctfs
    from tests.helpers import save_with_cryosparc_tools

    path = tmp_path / "exposures.cs"
    data = rfn.drop_fields(_exposures(["a_doseweighted.mrc"], [9_000.0]), ["ctf/cs_mm"], usemask=False)
    save_with_cryosparc_tools(path, data)
    with pytest.raises(CryobenchError, match=r"exposures.cs: the dataset lacks field\(s\) ctf/cs_mm"):
        read_exposure_ctfs(path, [tmp_path / "a_doseweighted.mrc"])


def test_templates_are_resampled_from_their_own_pixel_size():
    from pytest_cryobench.data.picking import templates_at_pixel_size

    yy, xx = np.mgrid[-32:32, -32:32]
    disc = (np.hypot(yy, xx) < 12).astype(np.float32)[None]
    same = templates_at_pixel_size(disc, 3.0, 3.0)
    assert same is disc
    finer = templates_at_pixel_size(disc, 3.0, 1.5)  # micrographs at half the pixel size: twice the box
    assert finer.shape == (1, 128, 128)
    assert abs((finer[0] > 0.5).sum() / (disc[0] > 0.5).sum() - 4.0) < 0.1
