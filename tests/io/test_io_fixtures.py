"""Reader tests on files the tests write themselves (always run, no shared data needed)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import pathlib
import zipfile

import antema_fast
import cv2
import numpy as np
import pytest
import tifffile
from antema_fast.io import (
    CalibrationWarning,
    DataConversionWarning,
    Micrograph,
    ReadError,
    iter_frames,
    read,
)

RNG = np.random.default_rng(7)


def _image(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return RNG.normal(100, 10, shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(max(info.min, -1000), min(info.max, 1000), shape).astype(dtype)


# ----------------------------------------------------------------------------- DM3 / DM4


@pytest.mark.parametrize("suffix", [".dm3", ".dm4"])
@pytest.mark.parametrize("dtype", ["uint16", "int16", "int32", "float32"])
@pytest.mark.parametrize(
    ("scale", "unit", "nm"),
    [(0.25, "nm", 0.25), (0.00125, "µm", 1.25), (1.5, "Å", 0.15), (80.0, "pm", 0.08)],
)
def test_dm_image_dtype_and_units(
    dm_writer, tmp_path: pathlib.Path, suffix: str, dtype: str, scale: float, unit: str, nm: float
) -> None:
    data = _image((24, 31), dtype)
    f = dm_writer(tmp_path / f"img{suffix}", data, [(scale, unit), (scale, unit)])
    m = read(f)
    assert m.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(m.data, data)
    assert m.pixel_size_nm == pytest.approx(nm, rel=1e-6)
    assert m.pixel_size_x_nm == pytest.approx(nm, rel=1e-6)
    assert m.pixel_size_source.startswith("file:DM")
    assert m.metadata["format"] == f"DM{suffix[-1]}"
    assert m.frame_count == 1 and m.frame_index is None
    assert m.name == "img"
    assert m.warnings == ()


def test_dm_x_and_y_axes_are_not_swapped(dm_writer, tmp_path: pathlib.Path) -> None:
    data = _image((10, 40), "uint16")  # 10 rows (y), 40 columns (x)
    f = dm_writer(tmp_path / "xy.dm4", data, [(0.2, "nm"), (0.201, "nm")])  # y, x
    m = read(f)
    assert m.data.shape == (10, 40)
    assert m.pixel_size_y_nm == pytest.approx(0.2, rel=1e-6)
    assert m.pixel_size_x_nm == pytest.approx(0.201, rel=1e-6)
    assert m.warnings == ()  # 0.5 % is the tolerance; 0.5 % exactly is not anisotropic


def test_dm_anisotropic_calibration_warns_and_uses_geometric_mean(
    dm_writer, tmp_path: pathlib.Path
) -> None:
    f = dm_writer(tmp_path / "aniso.dm3", _image((16, 16), "int16"), [(0.2, "nm"), (0.21, "nm")])
    with pytest.warns(CalibrationWarning, match="differ by 5"):
        m = read(f)
    assert m.pixel_size_nm == pytest.approx(math.sqrt(0.2 * 0.21), rel=1e-6)
    assert (m.pixel_size_x_nm, m.pixel_size_y_nm) == pytest.approx((0.21, 0.2), rel=1e-6)
    assert len(m.warnings) == 1 and "geometric mean" in m.warnings[0]


@pytest.mark.parametrize("suffix", [".dm3", ".dm4"])
def test_dm_stack_frames_and_timestamps(dm_writer, tmp_path: pathlib.Path, suffix: str) -> None:
    stack = _image((5, 12, 9), "float32")
    f = dm_writer(
        tmp_path / f"stack{suffix}",
        stack,
        [(0.5, "s"), (3.0, "Å"), (3.0, "Å")],
        sequence=True,
    )
    m = read(f)
    assert m.frame_count == 5 and m.frame_index == 0
    assert m.name == "stack_f0000"
    np.testing.assert_array_equal(read(f, frame=3).data, stack[3])
    frames = list(iter_frames(f))
    assert [fr.frame_index for fr in frames] == [0, 1, 2, 3, 4]
    assert [fr.timestamp_s for fr in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    for fr, expected in zip(frames, stack, strict=True):
        np.testing.assert_array_equal(fr.data, expected)
        assert fr.pixel_size_nm == pytest.approx(0.3)
    with pytest.raises(ReadError, match=r"frame 5 requested, the file has 5 frames"):
        read(f, frame=5)


def test_dm_diffraction_pattern_is_refused(dm_writer, tmp_path: pathlib.Path) -> None:
    f = dm_writer(tmp_path / "dp.dm3", _image((16, 16), "int32"), [(0.1, "1/nm"), (0.1, "1/nm")])
    with pytest.raises(ReadError, match=r"dp\.dm3.*diffraction pattern"):
        read(f)
    # a caller pixel size does not turn a diffraction pattern into an image
    with pytest.raises(ReadError, match="diffraction"):
        read(f, pixel_size_nm=0.1)


def test_dm_without_units_needs_a_pixel_size(dm_writer, tmp_path: pathlib.Path) -> None:
    data = _image((8, 8), "uint16")
    f = dm_writer(tmp_path / "nocal.dm4", data, [(1.0, ""), (1.0, "")])
    with pytest.raises(ReadError, match=r"nocal\.dm4: no pixel size.*pixel_size_nm=.*--pixel-size"):
        read(f)
    m = read(f, pixel_size_nm=0.7)
    assert (m.pixel_size_nm, m.pixel_size_source) == (0.7, "user")
    assert "file_pixel_size_nm" not in m.metadata
    m = read(f, require_calibration=False)
    assert math.isnan(m.pixel_size_nm) and m.pixel_size_source == "none"
    assert not m.is_calibrated


def test_user_pixel_size_wins_and_file_value_is_kept(dm_writer, tmp_path: pathlib.Path) -> None:
    f = dm_writer(tmp_path / "cal.dm3", _image((8, 8), "uint16"), [(2.0, "nm"), (2.0, "nm")])
    m = read(f, pixel_size_nm=0.5)
    assert m.pixel_size_nm == m.pixel_size_x_nm == m.pixel_size_y_nm == 0.5
    assert m.pixel_size_source == "user"
    assert m.metadata["file_pixel_size_nm"] == pytest.approx((2.0, 2.0))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "abc"])
def test_bad_user_pixel_size(dm_writer, tmp_path: pathlib.Path, bad: object) -> None:
    f = dm_writer(tmp_path / "cal.dm3", _image((8, 8), "uint16"), [(2.0, "nm"), (2.0, "nm")])
    with pytest.raises(ValueError, match="pixel_size_nm"):
        read(f, pixel_size_nm=bad)  # type: ignore[arg-type]


def test_dm_named_tif_is_read_by_content(dm_writer, tmp_path: pathlib.Path) -> None:
    f = dm_writer(
        tmp_path / "liar.tif", _image((8, 9), "int16"), [(1.0, "nm"), (1.0, "nm")], version=4
    )
    m = read(f)
    assert m.metadata["format"] == "DM4"
    assert m.data.shape == (8, 9)


@pytest.mark.parametrize("suffix", [".dm3", ".dm4"])
def test_dm_rgb_grey_and_colour(dm_writer, tmp_path: pathlib.Path, suffix: str) -> None:
    # nionswift-io writes RGB without calibration, hence the caller's pixel size
    grey = _image((6, 7), "uint8")
    f = dm_writer(tmp_path / f"grey{suffix}", np.dstack([grey] * 3), [])
    m = read(f, pixel_size_nm=1.0)
    assert m.data.dtype == np.uint8
    np.testing.assert_array_equal(m.data, grey)
    g = dm_writer(tmp_path / f"colour{suffix}", _image((6, 7, 3), "uint8"), [])
    with pytest.raises(ReadError, match="colour image"):
        read(g, pixel_size_nm=1.0)


@pytest.mark.parametrize("suffix", [".dm3", ".dm4"])
def test_dm_complex_becomes_modulus(dm_writer, tmp_path: pathlib.Path, suffix: str) -> None:
    data = (RNG.normal(size=(5, 6)) + 1j * RNG.normal(size=(5, 6))).astype(np.complex64)
    f = dm_writer(tmp_path / f"fft{suffix}", data, [(0.5, "nm"), (0.5, "nm")])
    with pytest.warns(DataConversionWarning, match=r"complex pixel values; using their modulus"):
        m = read(f)
    assert m.data.dtype == np.float32
    np.testing.assert_allclose(m.data, np.abs(data), rtol=1e-6)
    assert m.pixel_size_nm == pytest.approx(0.5)


# ----------------------------------------------------------------------------- TIFF


@pytest.mark.parametrize(
    ("unit", "px", "nm"),
    [("nm", 0.25, 0.25), ("micron", 0.0015, 1.5), ("\\u00B5m", 0.002, 2.0), ("\\u00C5", 3.0, 0.3)],
)
def test_imagej_tiff(tmp_path: pathlib.Path, unit: str, px: float, nm: float) -> None:
    data = _image((20, 30), "uint16")
    f = tmp_path / "ij.tif"
    tifffile.imwrite(f, data, imagej=True, resolution=(1 / px, 1 / px), metadata={"unit": unit})
    m = read(f)
    np.testing.assert_array_equal(m.data, data)
    assert m.pixel_size_nm == pytest.approx(nm, rel=1e-5)
    assert m.pixel_size_source == "file:ImageJ unit + X/YResolution"


def test_imagej_stack_with_frame_interval(tmp_path: pathlib.Path) -> None:
    stack = _image((4, 16, 16), "float32")
    f = tmp_path / "movie.tif"
    tifffile.imwrite(
        f,
        stack,
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"unit": "nm", "axes": "TYX", "finterval": 0.25},
    )
    frames = list(iter_frames(f))
    assert len(frames) == 4
    assert [fr.timestamp_s for fr in frames] == pytest.approx([0, 0.25, 0.5, 0.75])
    assert frames[2].pixel_size_nm == pytest.approx(0.5)
    np.testing.assert_array_equal(frames[3].data, stack[3])
    assert frames[3].name == "movie_f0003"


def test_imagej_without_unit_is_uncalibrated(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "ij_noscale.tif"
    tifffile.imwrite(f, _image((8, 8), "uint8"), imagej=True)
    with pytest.raises(ReadError, match="ImageJ metadata has no unit"):
        read(f)


def test_centimetre_resolution_tiff(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "cm.tif"
    # 2.5e6 pixels per cm = 4 nm per pixel; y slightly different
    tifffile.imwrite(
        f, _image((10, 10), "uint8"), resolution=(2.5e6, 2.5e6), resolutionunit="CENTIMETER"
    )
    m = read(f)
    assert m.pixel_size_nm == pytest.approx(4.0)
    assert m.pixel_size_source == "file:TIFF X/YResolution (cm)"


def test_inch_resolution_tiff_in_nm_range(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "inch.tif"
    tifffile.imwrite(
        f, _image((10, 10), "uint8"), resolution=(2.54e7, 2.54e7), resolutionunit="INCH"
    )
    assert read(f).pixel_size_nm == pytest.approx(1.0)


def test_display_dpi_is_not_a_calibration(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "dpi.tif"
    tifffile.imwrite(f, _image((10, 10), "uint8"), resolution=(72, 72), resolutionunit="INCH")
    with pytest.raises(ReadError, match="72 pixels per inch, a display density"):
        read(f)


def test_ome_tiff(tmp_path: pathlib.Path) -> None:
    data = _image((12, 14), "uint16")
    f = tmp_path / "img.ome.tif"
    tifffile.imwrite(
        f,
        data,
        ome=True,
        metadata={
            "PhysicalSizeX": 2.5,
            "PhysicalSizeXUnit": "Å",
            "PhysicalSizeY": 2.5,
            "PhysicalSizeYUnit": "Å",
        },
    )
    m = read(f)
    assert m.pixel_size_nm == pytest.approx(0.25)
    assert m.pixel_size_source == "file:OME PhysicalSizeX/Y"
    np.testing.assert_array_equal(m.data, data)


def test_ome_tiff_default_unit_is_micrometre(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "img.ome.tif"
    tifffile.imwrite(
        f,
        _image((6, 6), "uint8"),
        ome=True,
        metadata={"PhysicalSizeX": 0.002, "PhysicalSizeY": 0.002},
    )
    assert read(f).pixel_size_nm == pytest.approx(2.0)


def test_gatan_exported_tiff_tags(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "gatan.tif"
    extratags = [
        (65003, "s", 0, "um", True),  # real DM exports say "µm" (covered by the shared data)
        (65004, "s", 0, "um", True),
        (65009, "d", 1, 0.0015, True),
        (65010, "d", 1, 0.0015, True),
    ]
    tifffile.imwrite(f, _image((8, 8), "int32"), extratags=extratags)
    m = read(f)
    assert m.pixel_size_nm == pytest.approx(1.5)
    assert m.pixel_size_source == "file:Gatan TIFF tags 65009/65010"


def test_fei_tiff_metadata(tmp_path: pathlib.Path) -> None:
    ini = (
        "[User]\r\nDate=06/13/2016\r\nTime=05:06:40 PM\r\n"
        "[Beam]\r\nHV=200000\r\n"
        "[Scan]\r\nPixelWidth=2.5e-09\r\nPixelHeight=2.5e-09\r\nDwelltime=1e-06\r\n"
    )
    f = tmp_path / "fei.tif"
    tifffile.imwrite(f, _image((8, 8), "uint16"), extratags=[(34682, "s", 0, ini, True)])
    m = read(f)
    assert m.pixel_size_nm == pytest.approx(2.5)
    assert m.pixel_size_source == "file:FEI Scan.PixelWidth (m)"
    assert m.metadata["voltage_kV"] == pytest.approx(200.0)
    assert m.metadata["acquisition_time"] == "2016-06-13T17:06:40"


def _fei_ini(rows: int, cols: int) -> str:
    return (
        "[Scan]\r\nPixelWidth=2.5e-09\r\nPixelHeight=2.5e-09\r\n"
        f"[Image]\r\nResolutionX={cols}\r\nResolutionY={rows}\r\n"
    )


def test_fei_tiff_data_bar_is_cut_off(tmp_path: pathlib.Path) -> None:
    """FEI SEM/FIB TIFFs hold the instrument's data bar (text, scale bar) below the scanned
    image; [Image] ResolutionY gives the image's rows, and the rest never reaches analysis."""
    from antema_fast.io import iter_frames

    image = _image((2, 9, 11), "uint8")
    bar = np.zeros((2, 4, 11), np.uint8)
    bar[:, 1:3, 2:9] = 255  # "text" in the bar: bright blobs a segmenter would measure
    f = tmp_path / "fei_bar.tif"
    tifffile.imwrite(
        f, np.concatenate([image, bar], axis=1), extratags=[(34682, "s", 0, _fei_ini(9, 11), True)]
    )
    m = read(f)
    np.testing.assert_array_equal(m.data, image[0])
    assert m.metadata["data_bar_rows_removed"] == 4
    frames = [fr.data for fr in iter_frames(f)]
    assert len(frames) == 2
    np.testing.assert_array_equal(frames[1], image[1])
    # an [Image] section that does not describe a smaller image at the page's width crops nothing
    for rows, cols in ((13, 11), (9, 12), (0, 11)):
        g = tmp_path / f"fei_{rows}_{cols}.tif"
        full = np.concatenate([image[0], bar[0]])
        tifffile.imwrite(g, full, extratags=[(34682, "s", 0, _fei_ini(rows, cols), True)])
        m = read(g)
        np.testing.assert_array_equal(m.data, full)
        assert "data_bar_rows_removed" not in m.metadata


def test_rgb_tiff_that_is_grey_becomes_grey(tmp_path: pathlib.Path) -> None:
    grey = _image((9, 11), "uint8")
    f = tmp_path / "rgb.tif"
    tifffile.imwrite(f, np.stack([grey] * 3, axis=-1), photometric="rgb")
    m = read(f, pixel_size_nm=1.0)
    assert m.data.shape == (9, 11)
    np.testing.assert_array_equal(m.data, grey)


def test_colour_tiff_is_refused(tmp_path: pathlib.Path) -> None:
    rgb = _image((9, 11, 3), "uint8")
    f = tmp_path / "colour.tif"
    tifffile.imwrite(f, rgb, photometric="rgb")
    with pytest.raises(ReadError, match=r"colour\.tif.*colour image"):
        read(f, pixel_size_nm=1.0)


def test_nan_pixels_are_refused_with_count(tmp_path: pathlib.Path) -> None:
    data = _image((10, 10), "float32")
    data[1, 2] = np.nan
    data[3, 4] = np.inf
    data[5, 5] = -np.inf
    f = tmp_path / "nan.tif"
    tifffile.imwrite(f, data)
    with pytest.raises(ReadError, match=r"nan\.tif: 3 of 100 pixels are NaN or infinite"):
        read(f, pixel_size_nm=1.0)


def test_non_finite_edges_and_dead_pixels_are_filled_and_named(tmp_path: pathlib.Path) -> None:
    """A float frame as an alignment leaves it (NaN columns on the left, rows at the bottom) with
    two dead pixels: read with them set to the median of the rest, and their rectangles in the
    metadata and a warning, for the analysis to leave out; the finite pixels are unchanged."""
    data = _image((60, 80), "float32")
    bad = np.zeros(data.shape, bool)
    bad[:, :5] = bad[57:] = True
    bad[20, 40] = bad[21, 41] = True
    data[bad] = np.nan
    data[20, 40] = np.inf
    f = tmp_path / "aligned.tif"
    tifffile.imwrite(f, data)
    with pytest.warns(DataConversionWarning, match=r"aligned\.tif: 527 of 4800 pixels are NaN"):
        m = read(f, pixel_size_nm=1.0)
    assert m.metadata["non_finite_regions"] == [(0, 57, 80, 3), (0, 0, 5, 60), (37, 17, 8, 8)]
    assert np.isfinite(m.data).all()
    np.testing.assert_array_equal(m.data[~bad], data[~bad])
    assert (m.data[bad] == np.median(data[~bad])).all()
    # the same through an array
    with pytest.warns(DataConversionWarning, match="NaN or infinite"):
        a = antema_fast.Micrograph.from_array(data, 1.0)
    assert a.metadata["non_finite_regions"] == m.metadata["non_finite_regions"]


@pytest.mark.parametrize(
    "where",
    ["all", "scattered", "strips-leave-too-little"],
)
def test_non_finite_pixels_that_are_not_regions_are_refused(
    tmp_path: pathlib.Path, where: str
) -> None:
    data = _image((60, 80), "float32")
    if where == "all":
        data[:] = np.nan
    elif where == "scattered":
        data[::5, ::5] = np.nan
    else:
        data[:, :70] = np.nan  # 10 columns left
    f = tmp_path / "bad.tif"
    tifffile.imwrite(f, data)
    with pytest.raises(ReadError, match=r"bad\.tif: [0-9]+ of 4800 pixels are NaN or infinite"):
        read(f, pixel_size_nm=1.0)


def test_complex_data_becomes_modulus_with_warning(tmp_path: pathlib.Path) -> None:
    data = (RNG.normal(size=(6, 7)) + 1j * RNG.normal(size=(6, 7))).astype(np.complex64)
    f = tmp_path / "complex.tif"
    tifffile.imwrite(f, data)
    with pytest.warns(DataConversionWarning, match="modulus"):
        m = read(f, pixel_size_nm=1.0)
    assert m.data.dtype == np.float32
    np.testing.assert_allclose(m.data, np.abs(data), rtol=1e-6)
    assert any("modulus" in w for w in m.warnings)


def test_big_endian_tiff_gives_native_byte_order(tmp_path: pathlib.Path) -> None:
    data = _image((5, 5), "uint16")
    f = tmp_path / "be.tif"
    tifffile.imwrite(f, data, byteorder=">")
    m = read(f, pixel_size_nm=1.0)
    assert m.data.dtype.isnative
    np.testing.assert_array_equal(m.data, data)


def test_miniswhite_tiff_is_inverted_to_minisblack(tmp_path: pathlib.Path) -> None:
    data = _image((5, 6), "uint8")
    f = tmp_path / "white.tif"
    tifffile.imwrite(f, data, photometric="miniswhite")
    np.testing.assert_array_equal(read(f, pixel_size_nm=1.0).data, 255 - data)


def test_deflate_tiff(tmp_path: pathlib.Path) -> None:
    data = _image((8, 8), "uint16")
    f = tmp_path / "zlib.tif"
    tifffile.imwrite(f, data, compression="zlib")
    np.testing.assert_array_equal(read(f, pixel_size_nm=1.0).data, data)


def _has_imagecodecs() -> bool:
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_imagecodecs(), reason="imagecodecs is installed, LZW would decode")
def test_codec_that_needs_imagecodecs_is_named(tmp_path: pathlib.Path) -> None:
    g = tmp_path / "lzw.tif"
    tifffile.imwrite(g, _image((8, 8), "uint16"))
    with tifffile.TiffFile(g, mode="r+b") as t:
        t.pages[0].tags["Compression"].overwrite(5)  # claim LZW, a codec tifffile delegates
    with pytest.raises(ReadError, match=r"lzw\.tif: .*needs the optional package 'imagecodecs'"):
        read(g, pixel_size_nm=1.0)


def test_tiff_named_dm3_is_read_by_content(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "liar.dm3"
    tifffile.imwrite(f, _image((7, 7), "uint8"), resolution=(1e7, 1e7), resolutionunit="CENTIMETER")
    m = read(f)
    assert m.metadata["format"] == "TIFF"
    assert m.pixel_size_nm == pytest.approx(1.0)


# ----------------------------------------------------------------------------- PNG / JPEG / BMP


def test_png_needs_a_pixel_size_or_require_calibration_false(tmp_path: pathlib.Path) -> None:
    grey = _image((12, 13), "uint8")
    f = tmp_path / "plain.png"
    cv2.imwrite(str(f), grey)
    with pytest.raises(ReadError, match=r"plain\.png: no pixel size.*PNG files store no pixel"):
        read(f)
    m = read(f, pixel_size_nm=0.8)
    np.testing.assert_array_equal(m.data, grey)
    assert (m.pixel_size_nm, m.pixel_size_source) == (0.8, "user")
    m = read(f, require_calibration=False)
    assert math.isnan(m.pixel_size_nm) and m.pixel_size_source == "none"


def test_png_16_bit_kept(tmp_path: pathlib.Path) -> None:
    data = _image((8, 8), "uint16")
    f = tmp_path / "deep.png"
    cv2.imwrite(str(f), data)
    m = read(f, pixel_size_nm=1.0)
    assert m.data.dtype == np.uint16
    np.testing.assert_array_equal(m.data, data)


def test_grey_rgba_png_becomes_grey_and_colour_png_refused(tmp_path: pathlib.Path) -> None:
    grey = _image((8, 8), "uint8")
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    f = tmp_path / "rgba.png"
    cv2.imwrite(str(f), rgba)
    np.testing.assert_array_equal(read(f, pixel_size_nm=1.0).data, grey)
    colour = _image((8, 8, 3), "uint8")
    g = tmp_path / "colour.png"
    cv2.imwrite(str(g), colour)
    with pytest.raises(ReadError, match="colour image"):
        read(g, pixel_size_nm=1.0)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_jpeg_and_bmp(tmp_path: pathlib.Path, suffix: str) -> None:
    grey = np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))
    f = tmp_path / f"img{suffix}"
    cv2.imwrite(str(f), grey)
    m = read(f, pixel_size_nm=2.0)
    assert m.data.shape == (16, 16) and m.data.dtype == np.uint8
    assert m.metadata["format"] == {".jpg": "JPEG", ".bmp": "BMP"}[suffix]
    if suffix == ".bmp":
        np.testing.assert_array_equal(m.data, grey)


# ----------------------------------------------------------------------------- MRC


def test_mrc_stack_in_angstrom(tmp_path: pathlib.Path) -> None:
    from ncempy.io import mrc

    stack = _image((3, 10, 12), "float32")
    f = tmp_path / "vol.mrc"
    mrc.mrcWriter(f, stack, (1.0, 2.0, 2.0))
    m = read(f)
    assert m.frame_count == 3
    assert m.pixel_size_nm == pytest.approx(0.2)
    assert m.pixel_size_source == "file:MRC cella/mx (Å)"
    frames = list(iter_frames(f))
    for fr, expected in zip(frames, stack, strict=True):
        np.testing.assert_array_equal(fr.data, expected)


def test_mrc_without_cell_is_uncalibrated(tmp_path: pathlib.Path) -> None:
    from ncempy.io import mrc

    f = tmp_path / "nocell.mrc"
    mrc.mrcWriter(f, _image((1, 8, 8), "float32"), (1.0, 1.0, 1.0))
    raw = bytearray(f.read_bytes())
    raw[40:52] = bytes(12)  # zero the cell lengths
    f.write_bytes(bytes(raw))
    with pytest.raises(ReadError, match="cell size is zero"):
        read(f)


# ----------------------------------------------------------------------------- EMD


def test_berkeley_emd_with_n_m_units(tmp_path: pathlib.Path) -> None:
    import h5py

    data = _image((16, 20), "uint16")
    f = tmp_path / "berkeley.emd"
    with h5py.File(f, "w") as h:
        h.attrs["version_major"] = 0
        h.attrs["version_minor"] = 2
        g = h.create_group("data/image")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=data)
        d1 = g.create_dataset("dim1", data=np.arange(16) * 0.3)
        d1.attrs["units"] = np.bytes_(b"n_m")
        d2 = g.create_dataset("dim2", data=np.arange(20) * 0.3)
        d2.attrs["units"] = np.bytes_(b"n_m")
    m = read(f)
    assert m.pixel_size_nm == pytest.approx(0.3)
    assert m.metadata["format"] == "Berkeley EMD"
    np.testing.assert_array_equal(m.data, data)


def _velox_group(h, uuid: str, data: np.ndarray, detector: str, px_m: float, unit: str, t0: int):
    g = h.create_group(f"Data/Image/{uuid}")
    g.create_dataset("Data", data=data)
    frames = data.shape[2]
    docs = []
    for i in range(frames):
        doc = {
            "BinaryResult": {
                "Detector": detector,
                "PixelSize": {"width": str(px_m), "height": str(px_m)},
                "PixelUnitX": unit,
                "PixelUnitY": unit,
            },
            "Optics": {"AccelerationVoltage": "300000", "NominalMagnification": "100000"},
            "Acquisition": {"AcquisitionStartDatetime": {"DateTime": str(t0 + 2 * i)}},
            "Instrument": {"InstrumentModel": "Test Titan"},
        }
        docs.append(np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8))
    width = max(len(d) for d in docs) + 10
    meta = np.zeros((width, frames), dtype=np.uint8)
    for i, d in enumerate(docs):
        meta[: len(d), i] = d
    g.create_dataset("Metadata", data=meta)
    g.create_dataset("FrameLookupTable", data=np.arange(frames, dtype=np.uint32))


def test_velox_multi_detector_stack(tmp_path: pathlib.Path) -> None:
    import h5py

    eds = _image((8, 8, 1), "float32")
    haadf = _image((8, 8, 3), "uint16")
    df = _image((8, 8, 3), "uint16")
    f = tmp_path / "velox.emd"
    with h5py.File(f, "w") as h:
        # the EDS map comes first in the file; the reader puts imaging detectors first
        _velox_group(h, "0a", eds, "SuperXG21", 2e-9, "m", 1_600_000_000)
        _velox_group(h, "1b", haadf, "HAADF", 2e-9, "m", 1_600_000_000)
        _velox_group(h, "2c", df, "DF2", 2e-9, "m", 1_600_000_000)
        _velox_group(h, "3d", df, "Ceta", 1e8, "1/m", 1_600_000_000)
    m = read(f)
    assert m.signal == "HAADF"
    assert m.metadata["signals"] == ["HAADF", "DF2", "Ceta", "SuperXG21"]
    assert m.pixel_size_nm == pytest.approx(2.0)
    assert m.metadata["voltage_kV"] == pytest.approx(300.0)
    assert m.metadata["instrument"] == "Test Titan"
    frames = list(iter_frames(f, signal="DF2"))
    assert [fr.timestamp_s for fr in frames] == [1.6e9, 1.6e9 + 2, 1.6e9 + 4]
    np.testing.assert_array_equal(frames[1].data, df[:, :, 1])
    np.testing.assert_array_equal(read(f, signal=1, frame=2).data, df[:, :, 2])
    with pytest.raises(ReadError, match="'Ceta' is a diffraction pattern"):
        read(f, signal="Ceta")
    with pytest.raises(ReadError, match=r"no signal named 'BF'; the file holds 'HAADF', 'DF2'"):
        read(f, signal="BF")
    with pytest.raises(ReadError, match=r"signal=7 requested, the file has 4 signals"):
        read(f, signal=7)


# ----------------------------------------------------------------------------- archives


def test_gzip_tiff(tmp_path: pathlib.Path) -> None:
    data = _image((6, 6), "uint16")
    inner = tmp_path / "inner.tif"
    tifffile.imwrite(inner, data, resolution=(1e7, 1e7), resolutionunit="CENTIMETER")
    f = tmp_path / "inner.tif.gz"
    f.write_bytes(gzip.compress(inner.read_bytes()))
    m = read(f)
    np.testing.assert_array_equal(m.data, data)
    assert m.name == "inner"
    assert m.path == f
    assert m.metadata["archive_member"] == "inner.tif"


def test_zip_one_and_several_members(tmp_path: pathlib.Path) -> None:
    a, b = _image((6, 6), "uint8"), _image((7, 7), "uint8")
    for name, arr in (("a.tif", a), ("b.tif", b)):
        tifffile.imwrite(tmp_path / name, arr, resolution=(1e7, 1e7), resolutionunit="CENTIMETER")
    one = tmp_path / "one.zip"
    with zipfile.ZipFile(one, "w") as z:
        z.write(tmp_path / "a.tif", "folder/a.tif")
    np.testing.assert_array_equal(read(one).data, a)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.write(tmp_path / "a.tif", "a.tif")
        z.write(tmp_path / "b.tif", "b.tif")
    with pytest.raises(ReadError, match=r"two\.zip: a zip archive with 2 files \(a\.tif, b\.tif\)"):
        read(two)
    m = read(two, member="b.tif")
    np.testing.assert_array_equal(m.data, b)
    assert m.name == "b"
    with pytest.raises(ReadError, match="no member 'c.tif'"):
        read(two, member="c.tif")


# ----------------------------------------------------------------------------- Micrograph


def test_micrograph_from_array_and_frozen() -> None:
    m = Micrograph.from_array(np.ones((3, 4), np.float32), 1.5, name="sample")
    assert (m.pixel_size_nm, m.pixel_size_source, m.name, m.path) == (1.5, "user", "sample", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.pixel_size_nm = 2.0  # type: ignore[misc]
    with pytest.raises(ReadError, match="expected a 2-D image"):
        Micrograph.from_array(np.ones((3, 4, 5)), 1.0)
    with pytest.raises(ValueError, match="positive"):
        Micrograph.from_array(np.ones((3, 4)), -1.0)


def test_public_names_from_package() -> None:
    assert antema_fast.read is read
    assert antema_fast.iter_frames is iter_frames
    assert antema_fast.ReadError is ReadError
    assert antema_fast.Micrograph is Micrograph
