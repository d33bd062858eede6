"""Reading microscope files with their calibration.

:func:`read` returns one :class:`Micrograph` (a 2-D image with its pixel size in nm);
:func:`iter_frames` goes through the frames of a stack lazily. Every failure is a
:class:`ReadError` naming the file. See ``docs/reading.md`` for which tag each format's pixel
size comes from.
"""

from __future__ import annotations

from ._micrograph import (
    CalibrationWarning,
    DataConversionWarning,
    Micrograph,
    ReadError,
    ReadWarning,
)
from ._read import FrameIterator, iter_frames, read

__all__ = [
    "CalibrationWarning",
    "DataConversionWarning",
    "FrameIterator",
    "Micrograph",
    "ReadError",
    "ReadWarning",
    "iter_frames",
    "read",
]
