"""What every format reader hands back: an opened file with one or more signals.

A *signal* is one image or image stack in a file (a detector of a Velox file, an image of a
DM file, a series of a TIFF). Readers describe every signal they find, including those that
cannot be measured (spectra, diffraction patterns), so that the error message can say what the
file holds. Frames are read one at a time through ``read_frame`` so that stacks stay lazy.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._micrograph import Calibration
from ._units import classify_unit


@dataclass
class Signal:
    """One image or image stack inside a file.

    Attributes
    ----------
    name : str
        Name shown to users and accepted by ``signal=``.
    frame_count : int
        Number of 2-D frames.
    read_frame : callable
        ``read_frame(i)`` returns frame ``i`` as an array (2-D, or H×W×3/4 for RGB).
    calibration : Calibration or None
        Pixel size from the file, None when the file has none.
    calibration_note : str
        Why there is no calibration (for the error message), when there is none.
    problem : str or None
        Why this signal cannot be measured (a spectrum, a diffraction pattern), None if it can.
    metadata : dict
        Acquisition metadata of this signal.
    timestamp : callable or None
        ``timestamp(i)`` → seconds or None.
    shape : tuple
        Shape of one frame, for messages.
    """

    name: str
    frame_count: int
    read_frame: Callable[[int], np.ndarray]
    calibration: Calibration | None = None
    calibration_note: str = ""
    problem: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: Callable[[int], float | None] | None = None
    shape: tuple[int, ...] = ()
    dtype: str = ""


@dataclass
class Container:
    """An opened file: its format, its signals, and how to close it."""

    format: str
    signals: list[Signal]
    metadata: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close file handles and remove temporary files (in reverse order of opening)."""
        while self.closers:
            fn = self.closers.pop()
            with contextlib.suppress(Exception):
                fn()


def calibration_from_axes(
    x_scale: Any, x_unit: Any, y_scale: Any, y_unit: Any, source: str
) -> tuple[Calibration | None, str, str | None]:
    """Turn the x and y axis scales and units of a file into a :class:`Calibration`.

    Returns
    -------
    calibration : Calibration or None
    note : str
        Why there is no calibration, when there is none.
    problem : str or None
        Set when the axes are reciprocal (a diffraction pattern) or an energy (a spectrum):
        such a signal cannot be measured at all.
    """
    ux, uy = classify_unit(x_unit), classify_unit(y_unit)
    for u in (ux, uy):
        if u.kind == "reciprocal":
            return (
                None,
                "",
                (
                    f"a diffraction pattern or FFT (axes in {u.text!r}, a reciprocal length); "
                    "only real-space images can be measured"
                ),
            )
        if u.kind == "energy":
            return None, "", f"a spectrum (an axis in {u.text!r}), not an image"
    try:
        sx, sy = float(x_scale), float(y_scale)
    except (TypeError, ValueError):
        return None, f"the pixel size ({x_scale!r}, {y_scale!r}) is not a number", None
    if ux.kind != "length" or uy.kind != "length":
        units = f"{ux.text!r}" if ux.text == uy.text else f"{ux.text!r} and {uy.text!r}"
        if ux.kind == "none" and uy.kind == "none":
            return None, "its axes carry no length unit", None
        return None, f"its axis unit {units} is not a recognised length unit", None
    assert ux.nm_per_unit is not None and uy.nm_per_unit is not None
    x_nm, y_nm = abs(sx) * ux.nm_per_unit, abs(sy) * uy.nm_per_unit
    if not (x_nm > 0 and y_nm > 0 and np.isfinite(x_nm) and np.isfinite(y_nm)):
        return None, f"its pixel size is {sx!r} {ux.text} × {sy!r} {uy.text}", None
    return Calibration(x_nm, y_nm, source), "", None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the ``print`` calls some third-party readers make on errors."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
