"""FEI/Thermo Fisher TIA files: ``.ser`` (data) with its ``.emi`` (metadata), through ncempy.

A SER file stores no unit string: TIA writes image calibrations in metres. A diffraction
pattern recorded in TEM diffraction mode is calibrated in 1/m instead; such files are recognised
from the EMI's mode string (``TEM ... Diffraction``) or, without an EMI, from a calibration
that would mean pixels larger than 1 mm, and refused.
"""

from __future__ import annotations

import datetime
import pathlib
import re
from typing import Any

import numpy as np

from ._micrograph import Calibration, ReadError
from ._source import Container, Signal, quiet

_MAX_PIXEL_M = (
    1e-3  # a real-space pixel in metres is far below this; 1/m calibrations are far above
)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    m = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", str(value))
    return float(m.group(0)) if m else None


def _emi_metadata(emi: dict[str, Any]) -> dict[str, Any]:
    md: dict[str, Any] = {}
    name = emi.get("Microscope []") or emi.get("Microscope")
    if name:
        md["instrument"] = str(name).replace("Microscope ", "", 1).strip()
    volt = _number(emi.get("AcceleratingVoltage") or emi.get("High tension [kV]"))
    if volt:
        md["voltage_kV"] = volt / 1000.0 if volt > 1000 else volt
    mag = _number(emi.get("Magnification [x]") or emi.get("Magnification"))
    if mag:
        md["magnification"] = mag
    mode = emi.get("Mode []") or emi.get("Mode")
    if mode:
        md["mode"] = str(mode).strip()
    exposure = _number(emi.get("Integration time [s]") or emi.get("DwellTimePath"))
    if exposure is not None and emi.get("CameraNamePath"):
        md["exposure_s"] = exposure
    camera = emi.get("CameraNamePath")
    if camera:
        md["detector"] = str(camera)
    return md


def open_ser(path: pathlib.Path) -> Container:
    """Open a TIA ``.ser`` file (reading its ``.emi`` when it lies beside it)."""
    from ncempy.io import ser

    with quiet():
        handle = ser.fileSER(path)
    container = Container(format="TIA SER", signals=[])
    container.closers.append(lambda: handle._file_hdl.close())
    head = handle.head
    n = int(head["ValidNumberElements"])
    emi = getattr(handle, "_emi", None) or {}
    md = _emi_metadata(emi) if isinstance(emi, dict) else {}
    signal = Signal(name=path.stem, frame_count=n, read_frame=lambda i: np.empty((0,)), metadata=md)
    container.signals.append(signal)
    if n < 1:
        signal.problem = "an empty series (no valid elements)"
        return container
    if int(head["DataTypeID"]) == 0x4120:
        signal.problem = "a series of 1-D spectra, not an image"
        return container
    if int(head["DataTypeID"]) != 0x4122:
        signal.problem = f"SER data type 0x{int(head['DataTypeID']):x}, not an image"
        return container

    def read_frame(i: int) -> np.ndarray:
        with quiet():
            data, _ = handle.getDataset(i)
        return np.asarray(data)

    with quiet():
        first, meta = handle.getDataset(0)
    signal.read_frame = read_frame
    signal.shape = tuple(np.shape(first))
    signal.dtype = str(np.asarray(first).dtype)
    cals = meta["Calibration"]
    dx, dy = float(cals[0]["CalibrationDelta"]), float(cals[1]["CalibrationDelta"])
    mode = str(md.get("mode", ""))
    if re.match(r"\s*TEM\b", mode) and "diffraction" in mode.lower():
        signal.problem = (
            f"a diffraction pattern (TIA mode {mode.strip()!r}, calibration in 1/m); only "
            "real-space images can be measured"
        )
        return container
    if max(abs(dx), abs(dy)) > _MAX_PIXEL_M:
        signal.problem = (
            f"a diffraction pattern: its calibration {dx:g} per pixel is not a length in metres "
            "(TIA stores 1/m for diffraction); only real-space images can be measured"
        )
        return container
    if dx > 0 and dy > 0:
        signal.calibration = Calibration(dx * 1e9, dy * 1e9, "file:SER CalibrationDelta (m)")
    else:
        signal.calibration_note = f"its calibration deltas are {dx!r}, {dy!r}"

    times: dict[int, float | None] = {}

    def timestamp(i: int) -> float | None:
        if i not in times:
            try:
                with quiet():
                    tag = handle._getTag(i)
                times[i] = float(tag["Time"]) if tag and "Time" in tag else None
            except Exception:  # noqa: BLE001 - a missing time tag only loses the stamp
                times[i] = None
        return times[i]

    signal.timestamp = timestamp
    signal.metadata["timestamp_kind"] = "unix"
    t0 = timestamp(0)
    if t0:
        signal.metadata["acquisition_time"] = datetime.datetime.fromtimestamp(
            t0, tz=datetime.timezone.utc
        ).isoformat(timespec="seconds")
    return container


def sers_of_emi(path: pathlib.Path) -> list[pathlib.Path]:
    """The ``<stem>_N.ser`` files that belong to an ``.emi`` file, in N order."""
    pattern = re.compile(re.escape(path.stem) + r"_(\d+)\.ser$", re.IGNORECASE)
    found = []
    for p in path.parent.iterdir():
        m = pattern.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    if not found:
        raise ReadError(
            f"{path}: a TIA .emi file holds only metadata; its data file "
            f"{path.stem}_1.ser was not found beside it"
        )
    return [p for _, p in sorted(found)]
