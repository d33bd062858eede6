"""Damaged and wrong inputs: always a ReadError naming the file, never another exception."""

from __future__ import annotations

import gzip
import pathlib
import re
import shutil

import cv2
import numpy as np
import pytest
import tifffile
from antema_fast.io import ReadError, iter_frames, read

RNG = np.random.default_rng(11)


def _expect_read_error(path: pathlib.Path, fragment: str = "") -> ReadError:
    with pytest.raises(ReadError) as info:
        read(path, pixel_size_nm=1.0)
    message = str(info.value)
    assert path.name in message, message
    if fragment:
        assert re.search(fragment, message), message
    # iter_frames fails the same way, at once
    with pytest.raises(ReadError):
        iter_frames(path, pixel_size_nm=1.0)
    return info.value


def _dm3(dm_writer, tmp_path: pathlib.Path) -> pathlib.Path:
    data = RNG.integers(0, 4000, (128, 128)).astype(np.uint16)
    return dm_writer(tmp_path / "whole.dm3", data, [(0.1, "nm"), (0.1, "nm")])


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.1, 0.01])
def test_dm3_cut(dm_writer, tmp_path: pathlib.Path, fraction: float) -> None:
    whole = _dm3(dm_writer, tmp_path).read_bytes()
    cut = tmp_path / "cut.dm3"
    cut.write_bytes(whole[: int(len(whole) * fraction)])
    _expect_read_error(cut)


def test_dm4_cut_in_half(dm_writer, tmp_path: pathlib.Path) -> None:
    data = RNG.integers(0, 4000, (64, 64, 4)).astype(np.int32)[..., 0]
    whole = dm_writer(tmp_path / "whole.dm4", data, [(0.1, "nm"), (0.1, "nm")]).read_bytes()
    cut = tmp_path / "cut.dm4"
    cut.write_bytes(whole[: len(whole) // 2])
    _expect_read_error(cut, "truncated|damaged")


def test_zero_bytes(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "empty.dm3"
    f.write_bytes(b"")
    _expect_read_error(f, r"is empty \(0 bytes\)")


def test_random_bytes_named_dm4(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "noise.dm4"
    f.write_bytes(RNG.integers(0, 256, 5000).astype(np.uint8).tobytes())
    _expect_read_error(f, "not a recognised microscope file")


@pytest.mark.parametrize("magic", [b"\x00\x00\x00\x03", b"\x00\x00\x00\x04"])
def test_random_bytes_behind_a_dm_magic(tmp_path: pathlib.Path, magic: bytes) -> None:
    f = tmp_path / "fake.dm4"
    f.write_bytes(magic + RNG.integers(0, 256, 3000).astype(np.uint8).tobytes())
    _expect_read_error(f)


def test_directory(tmp_path: pathlib.Path) -> None:
    d = tmp_path / "folder.dm3"
    d.mkdir()
    _expect_read_error(d, "is a directory")


def test_missing_path(tmp_path: pathlib.Path) -> None:
    _expect_read_error(tmp_path / "missing.dm3", "no such file")


def test_text_file_named_tif(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "notes.tif"
    f.write_text("this is not an image\n" * 20)
    _expect_read_error(f, "not a recognised microscope file")


def test_tiff_cut_in_half(tmp_path: pathlib.Path) -> None:
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(
        whole, RNG.integers(0, 255, (4, 64, 64)).astype(np.uint8), photometric="minisblack"
    )
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ReadError) as info:
        for _ in iter_frames(cut, pixel_size_nm=1.0):
            pass
    assert "cut.tif" in str(info.value)


def test_tiff_header_only(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "header.tif"
    f.write_bytes(b"II*\x00\x08\x00\x00\x00")
    _expect_read_error(f)


def test_mrc_cut(tmp_path: pathlib.Path) -> None:
    from ncempy.io import mrc

    whole = tmp_path / "whole.mrc"
    mrc.mrcWriter(whole, np.zeros((4, 32, 32), np.float32), (1.0, 1.0, 1.0))
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(whole.read_bytes()[:3000])
    _expect_read_error(cut, "truncated")
    head_only = tmp_path / "head.mrc"
    head_only.write_bytes(whole.read_bytes()[:500])
    _expect_read_error(head_only)


def test_hdf5_cut(tmp_path: pathlib.Path) -> None:
    import h5py

    whole = tmp_path / "whole.emd"
    with h5py.File(whole, "w") as h:
        g = h.create_group("data/image")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=np.zeros((64, 64), np.uint16))
    cut = tmp_path / "cut.emd"
    cut.write_bytes(whole.read_bytes()[:1500])
    _expect_read_error(cut)


def test_hdf5_without_images(tmp_path: pathlib.Path) -> None:
    import h5py

    f = tmp_path / "other.h5"
    with h5py.File(f, "w") as h:
        h.create_dataset("table", data=np.arange(10))
    _expect_read_error(f, "neither a Velox EMD, a Berkeley EMD nor a HyperSpy file")


def test_corrupt_zip_and_gzip(tmp_path: pathlib.Path) -> None:
    z = tmp_path / "broken.zip"
    z.write_bytes(b"PK\x03\x04" + bytes(100))
    _expect_read_error(z)
    g = tmp_path / "broken.tif.gz"
    g.write_bytes(gzip.compress(b"not a tiff at all" * 10)[:30])
    _expect_read_error(g)


def test_truncated_png(tmp_path: pathlib.Path) -> None:
    whole = tmp_path / "whole.png"
    cv2.imwrite(str(whole), RNG.integers(0, 255, (64, 64)).astype(np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[:40])
    _expect_read_error(cut)


def test_ser_cut(tmp_path: pathlib.Path, shared_data: pathlib.Path) -> None:
    source = shared_data / "formats" / "rosettasciio" / "tia" / "new" / "128x128-TEM_search_1.ser"
    if not source.exists():
        pytest.skip(f"{source} is absent")
    cut = tmp_path / "cut_1.ser"
    data = source.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    _expect_read_error(cut)


def test_emi_without_its_ser(tmp_path: pathlib.Path, shared_data: pathlib.Path) -> None:
    source = shared_data / "formats" / "rosettasciio" / "tia" / "new" / "128x128-TEM_search.emi"
    if not source.exists():
        pytest.skip(f"{source} is absent")
    lone = tmp_path / "lonely.emi"
    shutil.copy(source, lone)
    _expect_read_error(lone, r"lonely_1\.ser was not found")


def test_non_path_argument() -> None:
    with pytest.raises(TypeError, match="expected a file path"):
        read(42)  # type: ignore[arg-type]


def test_member_on_a_non_archive(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "plain.tif"
    tifffile.imwrite(f, np.zeros((4, 4), np.uint8))
    with pytest.raises(ReadError, match="not a zip archive"):
        read(f, pixel_size_nm=1.0, member="x.tif")
