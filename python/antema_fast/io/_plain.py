"""PNG, JPEG and BMP images through OpenCV. These formats carry no microscope calibration."""

from __future__ import annotations

import pathlib

import numpy as np

from ._micrograph import ReadError
from ._source import Container, Signal


def open_plain(path: pathlib.Path, fmt: str) -> Container:
    """Decode a PNG/JPEG/BMP file (8- or 16-bit, grey or colour) into one signal."""
    import cv2

    raw = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ReadError(f"{path}: not a readable {fmt} image (OpenCV could not decode it)")
    if image.ndim == 3:
        # OpenCV gives BGR(A); put it in RGB(A) order so that colour messages are conventional
        image = image[..., [2, 1, 0, 3][: image.shape[2]]] if image.shape[2] in (3, 4) else image

    def read_frame(i: int) -> np.ndarray:
        return image

    signal = Signal(
        name=path.stem,
        frame_count=1,
        read_frame=read_frame,
        shape=tuple(image.shape),
        dtype=str(image.dtype),
        calibration_note=f"{fmt} files store no pixel size",
    )
    return Container(format=fmt, signals=[signal])
