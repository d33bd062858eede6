"""Gatan DigitalMicrograph DM3/DM4 files.

ncempy parses the tag tree (``ncempy.io.dm.fileDM``); the pixel data are then read frame by
frame straight from the file with our own seek + read, so that a stack never has to fit in
memory and the file is never memory-mapped (mapped pages would count as resident memory).
"""

from __future__ import annotations

import datetime
import os
import pathlib
from typing import Any, BinaryIO

import numpy as np

from ._micrograph import ReadError
from ._source import Container, Signal, calibration_from_axes, quiet
from ._units import classify_unit, seconds_per_unit

# DM data type code -> numpy dtype (pixel data are little-endian in DM3 and DM4)
_DM_DTYPES: dict[int, str] = {
    1: "<i2",
    2: "<f4",
    3: "<c8",
    6: "u1",
    7: "<i4",
    9: "i1",
    10: "<u2",
    11: "<u4",
    12: "<f8",
    13: "<c16",
    14: "u1",  # binary
    39: "<i8",
    40: "<u8",
}
_DM_RGBA = 23


def _filetime_to_iso(value: Any) -> str | None:
    """Windows FILETIME (100 ns since 1601-01-01 UTC) → ISO 8601 UTC, as DM stores it."""
    try:
        seconds = float(value) / 1e7 - 11644473600.0
        if not (0 < seconds < 4e9):
            return None
        stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
        return stamp.isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _metadata(tags: dict[str, Any], pre: str) -> dict[str, Any]:
    md: dict[str, Any] = {}
    t = pre + ".ImageTags."

    def first(*keys: str) -> Any:
        for k in keys:
            v = tags.get(t + k)
            if v is not None and not (isinstance(v, str) and not v.strip()):
                return v
        return None

    name = first("Microscope Info.Name", "Session Info.Microscope", "Microscope Info.Microscope")
    if name is not None:
        md["instrument"] = str(name)
    volt = first("Microscope Info.Voltage")
    if volt is not None and float(volt) > 0:
        md["voltage_kV"] = float(volt) / 1000.0
    mag = first("Microscope Info.Actual Magnification", "Microscope Info.Indicated Magnification")
    if mag is not None and float(mag) > 0:
        md["magnification"] = float(mag)
    when = _filetime_to_iso(first("DataBar.Acquisition Time (OS)"))
    if when is not None:
        md["acquisition_time"] = when
    else:
        date, time = first("DataBar.Acquisition Date"), first("DataBar.Acquisition Time")
        if date is not None:
            md["acquisition_time_text"] = f"{date} {time or ''}".strip()
    exposure = first(
        "Acquisition.Parameters.High Level.Exposure (s)",
        "DataBar.Exposure Time (s)",
        "Acquisition.Parameters.Acquisition Write Blocked.Exposure (s)",
    )
    if exposure is not None:
        md["exposure_s"] = float(exposure)
    detector = first("DataBar.Device Name", "Acquisition.Device.Name")
    if detector is not None:
        md["detector"] = str(detector)
    return md


def _reader(
    fh: BinaryIO, path: pathlib.Path, offset: int, dtype: np.dtype, frame_shape: tuple[int, ...]
):
    count = int(np.prod(frame_shape))
    nbytes = count * dtype.itemsize

    def read_frame(i: int) -> np.ndarray:
        start = offset + i * nbytes
        fh.seek(start)
        buf = fh.read(nbytes)
        if len(buf) != nbytes:
            raise ReadError(
                f"{path}: truncated: expected {nbytes} bytes of pixel data for frame {i} at "
                f"offset {start}, the file ends after {len(buf)}"
            )
        return np.frombuffer(buf, dtype=dtype).reshape(frame_shape)

    return read_frame


def open_dm(path: pathlib.Path) -> Container:
    """Open a DM3/DM4 file and describe its images.

    Parameters
    ----------
    path : pathlib.Path
        The file.

    Returns
    -------
    Container
        One signal per image of the file (the thumbnail excluded).
    """
    from ncempy.io import dm

    with quiet():
        parsed = dm.fileDM(path, on_memory=False)
    try:
        tags: dict[str, Any] = dict(parsed.allTags)
        version = int(getattr(parsed, "_dmType", 0) or 0)
    finally:
        with quiet():
            parsed.fid.close()
    size = os.path.getsize(path)

    lists = []
    n = 1
    while f".ImageList.{n}.ImageData.DataType" in tags:
        lists.append(n)
        n += 1
    if not lists:
        raise ReadError(f"{path}: a DM file without any image data (no ImageList entries)")
    # the first entry is DM's RGB thumbnail when there is more than one
    if len(lists) > 1 and int(tags[".ImageList.1.ImageData.DataType"]) == _DM_RGBA:
        lists = lists[1:]

    fh = open(path, "rb")  # noqa: SIM115 - closed by the container
    container = Container(format=f"DM{version}" if version else "DM", signals=[])
    container.closers.append(fh.close)
    names_seen: dict[str, int] = {}
    for index, n in enumerate(lists):
        pre = f".ImageList.{n}"
        data = pre + ".ImageData"
        dims: list[int] = []
        k = 1
        while f"{data}.Dimensions.{k}" in tags:
            dims.append(int(tags[f"{data}.Dimensions.{k}"]))
            k += 1
        code = int(tags[f"{data}.DataType"])
        name = str(tags.get(pre + ".Name") or f"image{index}")
        if name in names_seen:
            names_seen[name] += 1
            name = f"{name}#{names_seen[name]}"
        else:
            names_seen[name] = 1
        md = _metadata(tags, pre)
        units = [
            tags.get(f"{data}.Calibrations.Dimension.{j + 1}.Units", "") for j in range(len(dims))
        ]
        scales = [
            tags.get(f"{data}.Calibrations.Dimension.{j + 1}.Scale", 1.0) for j in range(len(dims))
        ]
        fmt = str(tags.get(pre + ".ImageTags.Meta Data.Format", ""))
        signal = Signal(
            name=name,
            frame_count=1,
            read_frame=lambda i: np.empty((0,)),
            metadata=md,
            shape=tuple(reversed(dims)),
        )
        container.signals.append(signal)

        effective = [d for d in dims]
        while len(effective) > 2 and effective[-1] == 1:
            effective.pop()
        if len(effective) < 2 or effective[1] == 1 or effective[0] == 1:
            unit = units[0] if units else ""
            signal.problem = (
                f"a 1-D {'spectrum' if fmt.lower().startswith('spectrum') else 'signal'} "
                f"({max(dims) if dims else 0} points, axis unit {str(unit)!r}), not an image"
            )
            continue
        if len(effective) > 3:
            signal.problem = f"a {len(effective)}-D dataset {tuple(reversed(dims))}, not an image"
            continue
        if fmt.lower().startswith("spectrum"):
            signal.problem = f"a spectrum image (DM format {fmt!r}), not an image"
            continue
        if len(effective) == 3 and classify_unit(units[2]).kind in ("energy", "reciprocal"):
            signal.problem = (
                f"a spectrum image (third axis in {str(units[2])!r}), not an image stack"
            )
            continue
        if code == _DM_RGBA:
            dtype = np.dtype("u1")
            frame_shape: tuple[int, ...] = (effective[1], effective[0], 4)
        elif code in _DM_DTYPES:
            dtype = np.dtype(_DM_DTYPES[code])
            frame_shape = (effective[1], effective[0])
        else:
            signal.problem = f"pixel data of DM type {code}, which is not supported"
            continue
        frames = effective[2] if len(effective) == 3 else 1
        offset = tags.get(f"{data}.Data.arrayOffset")
        if offset is None:
            signal.problem = "an image whose pixel data could not be located in the file"
            continue
        nbytes_total = int(np.prod(frame_shape)) * dtype.itemsize * frames
        if int(offset) + nbytes_total > size:
            raise ReadError(
                f"{path}: truncated: image {name!r} needs {nbytes_total} bytes from offset "
                f"{int(offset)}, but the file has only {size} bytes"
            )
        signal.frame_count = frames
        signal.shape = frame_shape
        signal.dtype = str(dtype)
        signal.read_frame = _reader(fh, path, int(offset), dtype, frame_shape)
        cal, note, problem = calibration_from_axes(
            scales[0], units[0], scales[1], units[1], "file:DM ImageData.Calibrations.Dimension"
        )
        if problem:
            signal.problem = problem
            continue
        signal.calibration = cal
        signal.calibration_note = note
        if frames > 1:
            per = seconds_per_unit(units[2])
            if per is not None:
                step = float(scales[2]) * per
                signal.timestamp = lambda i, step=step: i * step
                signal.metadata["timestamp_kind"] = "relative"
    return container
