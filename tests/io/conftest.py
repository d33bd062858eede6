"""Helpers that write small calibrated microscope files for the reader tests."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
import pytest


def write_dm(
    path: pathlib.Path,
    data: np.ndarray,
    calibrations: Sequence[tuple[float, str]],
    *,
    version: int | None = None,
    sequence: bool = False,
) -> pathlib.Path:
    """Write a DM3/DM4 file with nionswift-io.

    ``calibrations`` are (scale, unit) per array axis in numpy order (rows first), as
    nionswift-io takes them (empty: uncalibrated). ``version`` defaults to the file's suffix.
    """
    dm_io = pytest.importorskip("nionswift_plugin.DM_IO.dm3_image_utils")
    from nion.data import Calibration, DataAndMetadata

    if version is None:
        version = 4 if path.suffix.lower() == ".dm4" else 3
    descriptor = DataAndMetadata.DataDescriptor(sequence, 0, 2)
    xdata = DataAndMetadata.new_data_and_metadata(
        data,
        data_descriptor=descriptor,
        dimensional_calibrations=[Calibration.Calibration(0.0, s, u) for s, u in calibrations]
        or None,
    )
    with open(path, "wb") as f:
        dm_io.save_image(xdata, f, version)
    return path


@pytest.fixture
def dm_writer():
    """The :func:`write_dm` helper, skipping the test when nionswift-io is missing."""
    pytest.importorskip("nionswift_plugin.DM_IO.dm3_image_utils")
    return write_dm
