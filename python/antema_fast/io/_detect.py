"""Recognise a file's format from its content (magic bytes), not from its extension."""

from __future__ import annotations

import pathlib

from ._micrograph import ReadError
from ._mrc import MRC_EXTENSIONS, looks_like_mrc

FORMAT_NAMES = {
    "dm": "Gatan DM3/DM4",
    "tiff": "TIFF",
    "hdf5": "HDF5 (Velox EMD, Berkeley EMD, HyperSpy)",
    "ser": "TIA SER",
    "emi": "TIA EMI",
    "mrc": "MRC",
    "png": "PNG",
    "jpeg": "JPEG",
    "bmp": "BMP",
    "zip": "zip archive",
    "gzip": "gzip archive",
}

_HDF5 = b"\x89HDF\r\n\x1a\n"


def detect_format(path: pathlib.Path) -> str:
    """Return the format key of ``path`` (see :data:`FORMAT_NAMES`).

    Parameters
    ----------
    path : pathlib.Path
        An existing, non-empty regular file.

    Raises
    ------
    ReadError
        When the content matches no supported format.
    """
    with open(path, "rb") as f:
        head = f.read(1024)
    if head[:4] in (b"\x00\x00\x00\x03", b"\x00\x00\x00\x04"):
        return "dm"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:8] == _HDF5 or _hdf5_with_userblock(path):
        return "hdf5"
    if head[:4] == b"II\x97\x01":
        return "ser"
    if head[:4] == b"JK\x00\x02":
        return "emi"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:2] == b"BM" and len(head) >= 26:
        return "bmp"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if looks_like_mrc(head) and (head[208:212] == b"MAP " or path.suffix.lower() in MRC_EXTENSIONS):
        return "mrc"
    start = head[:8].hex(" ")
    raise ReadError(
        f"{path}: not a recognised microscope file (it starts with bytes {start}); expected "
        "DM3/DM4, TIA SER/EMI, Velox or Berkeley EMD, HyperSpy, MRC, TIFF, PNG, JPEG or BMP"
    )


def _hdf5_with_userblock(path: pathlib.Path) -> bool:
    """HDF5 allows a user block of 512, 1024, 2048 ... bytes before the signature."""
    with open(path, "rb") as f:
        offset = 512
        while offset <= 1 << 16:
            f.seek(offset)
            chunk = f.read(8)
            if len(chunk) < 8:
                return False
            if chunk == _HDF5:
                return True
            offset *= 2
    return False
