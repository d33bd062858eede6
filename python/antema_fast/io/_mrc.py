"""MRC / CCP4 files (MRC2014): images and stacks, pixel size in Å from the header.

The 1024-byte header is parsed here (a few fixed fields); frames are read one at a time with
seek + read. The pixel size is ``cella / mx`` (x) and ``cella_y / my`` (y) in Å, as the MRC2014
standard defines it; a zero cell means the file has no calibration.
"""

from __future__ import annotations

import os
import pathlib
from typing import Literal

import numpy as np

from ._micrograph import Calibration, ReadError
from ._source import Container, Signal

_MODES: dict[int, str] = {0: "i1", 1: "i2", 2: "f4", 4: "c8", 6: "u2", 12: "f2"}
MRC_EXTENSIONS = {".mrc", ".mrcs", ".rec", ".st", ".ali", ".map", ".ccp4"}


def looks_like_mrc(head: bytes) -> bool:
    """True when ``head`` (at least 224 bytes) is a plausible MRC header."""
    if len(head) < 224:
        return False
    if head[208:212] == b"MAP ":
        return True
    for order in "<>":
        nx, ny, nz, mode = np.frombuffer(head[:16], dtype=f"{order}i4")
        if 0 < nx < 1 << 20 and 0 < ny < 1 << 20 and 0 < nz < 1 << 24 and int(mode) in _MODES:
            return True
    return False


def open_mrc(path: pathlib.Path) -> Container:
    """Open an MRC file: one signal whose frames are the sections along z."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(1024)
    if len(head) < 1024:
        raise ReadError(f"{path}: truncated: an MRC header is 1024 bytes, the file has {size}")
    order: Literal["<", ">"] = "<"
    stamp = head[212:214]
    if stamp in (b"\x11\x11", b"\x11\x00"):
        order = ">"
    elif stamp not in (b"\x44\x44", b"\x44\x41"):
        nx_le = int(np.frombuffer(head[:4], "<i4")[0])
        order = "<" if 0 < nx_le < 1 << 20 else ">"
    ints = np.frombuffer(head[:40], dtype=f"{order}i4")
    nx, ny, nz, mode = (int(v) for v in ints[:4])
    mx, my = int(ints[7]), int(ints[8])
    cell = np.frombuffer(head[40:52], dtype=f"{order}f4").astype(np.float64)
    nsymbt = int(np.frombuffer(head[92:96], dtype=f"{order}i4")[0])
    if not (nx > 0 and ny > 0 and nz > 0):
        raise ReadError(f"{path}: not an MRC file: dimensions {nx} × {ny} × {nz}")
    if mode not in _MODES:
        raise ReadError(
            f"{path}: MRC mode {mode} is not supported (expected one of {sorted(_MODES)})"
        )
    dtype = np.dtype(_MODES[mode]).newbyteorder(order)
    offset = 1024 + max(nsymbt, 0)
    frame_bytes = nx * ny * dtype.itemsize
    need = offset + frame_bytes * nz
    if need > size:
        raise ReadError(
            f"{path}: truncated: {nz} sections of {nx} × {ny} {dtype} need {need} bytes, the "
            f"file has {size}"
        )
    fh = open(path, "rb")  # noqa: SIM115 - closed by the container
    container = Container(format="MRC", signals=[])
    container.closers.append(fh.close)

    def read_frame(i: int) -> np.ndarray:
        fh.seek(offset + i * frame_bytes)
        buf = fh.read(frame_bytes)
        if len(buf) != frame_bytes:
            raise ReadError(f"{path}: truncated in section {i}")
        return np.frombuffer(buf, dtype=dtype).reshape(ny, nx)

    signal = Signal(
        name=path.stem, frame_count=nz, read_frame=read_frame, shape=(ny, nx), dtype=str(dtype)
    )
    container.signals.append(signal)
    if mx > 0 and my > 0 and cell[0] > 0 and cell[1] > 0:
        signal.calibration = Calibration(
            float(cell[0] / mx) * 0.1, float(cell[1] / my) * 0.1, "file:MRC cella/mx (Å)"
        )
    else:
        signal.calibration_note = "its header cell size is zero"
    ext = head[104:108]
    if ext[:3] in (b"FEI",):
        signal.metadata["extended_header"] = ext.decode("ascii", "replace")
    return container
