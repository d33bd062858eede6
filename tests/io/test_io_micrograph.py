"""The Micrograph object, calibration from axes, and the frame iterator's life cycle."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest
import tifffile
from antema_fast.io import Micrograph, ReadError, iter_frames
from antema_fast.io._micrograph import Calibration, anisotropy_note
from antema_fast.io._source import calibration_from_axes
from antema_fast.io._units import _LENGTH_NM
from hypothesis import given
from hypothesis import strategies as st


def _m(frame_index: int | None, frame_count: int, path: str | None = "/d/scan.tif") -> Micrograph:
    return Micrograph(
        data=np.zeros((2, 2), np.uint8),
        pixel_size_nm=1.0,
        pixel_size_x_nm=1.0,
        pixel_size_y_nm=1.0,
        pixel_size_source="user",
        path=None if path is None else pathlib.Path(path),
        frame_index=frame_index,
        frame_count=frame_count,
    )


def test_names() -> None:
    assert _m(None, 1).name == "scan"
    assert _m(7, 12).name == "scan_f0007"
    assert _m(7, 20000).name == "scan_f00007"
    assert _m(None, 1, path=None).name == "array"


@given(
    scale=st.floats(1e-6, 1e6, allow_nan=False),
    unit=st.sampled_from(["m", "cm", "mm", "um", "nm", "angstrom", "pm"]),
)
def test_calibration_is_scale_times_unit(scale: float, unit: str) -> None:
    spelled = {"angstrom": "Å", "um": "µm"}.get(unit, unit)
    cal, note, problem = calibration_from_axes(scale, spelled, scale, spelled, "test")
    assert problem is None and note == ""
    assert cal is not None
    assert cal.x_nm == pytest.approx(scale * _LENGTH_NM[unit], rel=1e-12)
    assert cal.y_nm == cal.x_nm


@given(scale=st.floats(1e-6, 1e6), unit=st.sampled_from(["1/nm", "1/m", "nm^-1", "1/Å"]))
def test_reciprocal_axes_are_a_problem(scale: float, unit: str) -> None:
    cal, _, problem = calibration_from_axes(scale, unit, scale, unit, "test")
    assert cal is None and problem is not None and "diffraction" in problem


@pytest.mark.parametrize(
    ("scale", "unit", "why"),
    [
        (1.0, "", "carry no length unit"),
        (1.0, "units1", "not a recognised length unit"),
        (0.0, "nm", "pixel size is"),
        ("x", "nm", "not a number"),
    ],
)
def test_no_calibration_reasons(scale: object, unit: str, why: str) -> None:
    cal, note, problem = calibration_from_axes(scale, unit, scale, unit, "test")
    assert cal is None and problem is None and why in note


@given(x=st.floats(0.001, 1000), ratio=st.floats(1.0, 1.2))
def test_anisotropy_threshold(x: float, ratio: float) -> None:
    note = anisotropy_note(Calibration(x, x * ratio, "test"), "f")
    if ratio - 1.0 > 0.005 * (1 + 1e-9):
        assert note is not None and "geometric mean" in note
    elif ratio - 1.0 < 0.005 * (1 - 1e-9):
        assert note is None
    if note:
        assert f"{math.sqrt(x * x * ratio):.6g}" in note


def test_frame_iterator_life_cycle(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "s.tif"
    tifffile.imwrite(f, np.zeros((3, 4, 4), np.uint8), photometric="minisblack")
    it = iter_frames(f, pixel_size_nm=1.0)
    assert len(it) == 3 and it.signal == "series0"
    first = next(it)
    assert first.frame_index == 0
    it.close()
    with pytest.raises(StopIteration):
        next(it)
    with iter_frames(f, pixel_size_nm=1.0) as it2:
        assert [m.frame_index for m in it2] == [0, 1, 2]


def test_single_image_iterates_once(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "one.tif"
    tifffile.imwrite(f, np.zeros((4, 4), np.uint8))
    frames = list(iter_frames(f, pixel_size_nm=1.0))
    assert len(frames) == 1
    assert frames[0].frame_index is None and frames[0].name == "one"


def test_frame_argument_checks(tmp_path: pathlib.Path) -> None:
    from antema_fast.io import read

    f = tmp_path / "one.tif"
    tifffile.imwrite(f, np.zeros((4, 4), np.uint8))
    assert read(f, pixel_size_nm=1.0, frame=0).frame_index is None
    with pytest.raises(ReadError, match="frame 1 requested, the file has 1 frame "):
        read(f, pixel_size_nm=1.0, frame=1)
    with pytest.raises(ReadError, match="frame -1 requested"):
        read(f, pixel_size_nm=1.0, frame=-1)
    with pytest.raises(TypeError, match="frame: expected an int"):
        read(f, pixel_size_nm=1.0, frame=1.5)  # type: ignore[arg-type]
