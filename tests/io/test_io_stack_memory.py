"""Stacks are read frame by frame: memory stays flat however large the file."""

from __future__ import annotations

import pathlib
import struct

import numpy as np
import pytest
import tifffile
from antema_fast.io import iter_frames

FRAME = (2048, 2048)  # uint16: 8 MiB per frame


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


def _write_stack(path: pathlib.Path, frames: int) -> None:
    """Write the stack one frame at a time, so that writing it is flat in memory too."""
    frame = np.empty(FRAME, np.uint16)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for i in range(frames):
            frame[...] = i
            frame[0, :8] = np.arange(8) + i  # a small pattern that differs per frame
            tw.write(
                frame,
                contiguous=True,
                photometric="minisblack",
                resolution=(1e7, 1e7),
                resolutionunit="CENTIMETER",
            )


def _iterate_and_measure(path: pathlib.Path, frames: int) -> int:
    """Iterate the stack, check every frame, and return the peak RSS growth in bytes."""
    start = _rss_bytes()
    peak = start
    seen = 0
    with iter_frames(path) as it:
        assert len(it) == frames
        for m in it:
            assert m.frame_index == seen
            assert m.data.shape == FRAME
            assert m.data[5, 5] == seen % 65536
            assert m.data[0, 3] == (3 + seen) % 65536
            assert m.pixel_size_nm == pytest.approx(1.0)
            seen += 1
            peak = max(peak, _rss_bytes())
            del m
    assert seen == frames
    return peak - start


@pytest.mark.skipif(not pathlib.Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_256_mib_tiff_stack_is_read_lazily(tmp_path: pathlib.Path) -> None:
    frames = 32  # 256 MiB
    path = tmp_path / "stack.tif"
    _write_stack(path, frames)
    growth = _iterate_and_measure(path, frames)
    assert growth < 64 * 2**20, f"memory grew by {growth / 2**20:.0f} MiB for a 256 MiB stack"


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_2_gib_tiff_stack_with_flat_memory(tmp_path: pathlib.Path) -> None:
    frames = 256  # 2 GiB of pixel data
    path = tmp_path / "big_stack.tif"
    try:
        _write_stack(path, frames)
        assert path.stat().st_size >= 2 * 2**30
        growth = _iterate_and_measure(path, frames)
    finally:
        path.unlink(missing_ok=True)
    assert growth < 100 * 2**20, f"memory grew by {growth / 2**20:.0f} MiB for a 2 GiB stack"


def test_imagej_stack_with_a_single_ifd_is_read_frame_by_frame(tmp_path: pathlib.Path) -> None:
    """ImageJ stacks above 4 GB have one IFD and contiguous data; frames are read by offset."""
    stack = np.arange(3 * 5 * 6, dtype=np.uint16).reshape(3, 5, 6)
    f = tmp_path / "ij.tif"
    tifffile.imwrite(f, stack, imagej=True, resolution=(2, 2), metadata={"unit": "nm"})
    with tifffile.TiffFile(f) as t:
        offset = t.pages[0].offset
    raw = bytearray(f.read_bytes())
    (count,) = struct.unpack_from("<H", raw, offset)
    struct.pack_into("<I", raw, offset + 2 + 12 * count, 0)  # cut the IFD chain after page 0
    f.write_bytes(bytes(raw))
    with tifffile.TiffFile(f) as t:
        assert len(t.pages) == 1 and t.series[0].shape == (3, 5, 6)
    frames = [m.data for m in iter_frames(f)]
    assert len(frames) == 3
    for got, expected in zip(frames, stack, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_mrc_stack_written_in_chunks_is_read_lazily(tmp_path: pathlib.Path) -> None:
    from ncempy.io import mrc

    frames = 16  # 128 MiB of uint16
    path = tmp_path / "stack.mrc"
    mrc.writeHeader(path, (frames, *FRAME), np.uint16, (1.0, 10.0, 10.0))
    frame = np.empty(FRAME, np.uint16)
    for i in range(frames):
        frame[...] = i
        frame[0, :8] = np.arange(8) + i
        mrc.appendData(path, frame)
    growth = _iterate_and_measure(path, frames)
    assert growth < 48 * 2**20, f"memory grew by {growth / 2**20:.0f} MiB for a 128 MiB stack"


def test_dm4_stack_is_read_lazily(dm_writer, tmp_path: pathlib.Path) -> None:
    frames = 16  # 128 MiB of uint16
    stack = np.empty((frames, *FRAME), np.uint16)
    for i in range(frames):
        stack[i] = i
        stack[i, 0, :8] = np.arange(8) + i
    path = dm_writer(
        tmp_path / "stack.dm4", stack, [(1.0, "s"), (1.0, "nm"), (1.0, "nm")], sequence=True
    )
    del stack
    growth = _iterate_and_measure(path, frames)
    assert growth < 48 * 2**20, f"memory grew by {growth / 2**20:.0f} MiB for a 128 MiB stack"
