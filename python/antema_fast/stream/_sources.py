"""Frame sources of a stream: files, videos, folders (finished or still being written), iterables.

Every source is turned into an iterator of :class:`FrameRef`: a frame's position in the movie,
its name and time, and a ``load`` function that returns the :class:`~antema_fast.io.Micrograph`.
Reading itself is done by :mod:`antema_fast.io` (microscope files) or OpenCV (videos and plain
images that the reader does not take); nothing here decodes a microscope format.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".mpg", ".mpeg"})
PLAIN_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
IMAGE_SUFFIXES = frozenset(
    {".tif", ".tiff", ".dm3", ".dm4", ".mrc", ".ser", ".emd", ".h5", ".hspy"} | PLAIN_IMAGE_SUFFIXES
)
_PARTIAL_SUFFIXES = frozenset({".tmp", ".part", ".partial", ".crdownload", ".lock"})


@dataclass(frozen=True)
class FrameRef:
    """One frame of a source, not yet read.

    Attributes
    ----------
    index : int
        Position of the frame in the source (0-based, before ``every`` subsampling).
    name : str
        File name or ``"<source>#<index>"``.
    time_s : float or None
        Acquisition time in seconds from the first frame, when known.
    load : callable
        Returns the frame as a Micrograph (this is the reading stage).
    """

    index: int
    name: str
    time_s: float | None
    load: Callable[[], Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class SkippedFrame:
    """A frame that was not analysed, and why (never silently lost)."""

    index: int
    name: str
    reason: str


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders ``frame2`` before ``frame10``.

    Examples
    --------
    >>> sorted(["f10.tif", "f2.tif", "f1.tif"], key=natural_key)
    ['f1.tif', 'f2.tif', 'f10.tif']
    """
    parts = re.split(r"(\d+)", name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def _same(item: Any) -> Any:
    return item


def _micrograph_from_array(data: np.ndarray, pixel_size_nm: float | None, name: str) -> Any:
    from ..io import Micrograph

    if pixel_size_nm is None:
        raise ValueError(
            f"{name}: this source has no pixel size; expected pixel_size_nm (--pixel-size NM), "
            "got None"
        )
    return Micrograph.from_array(data, float(pixel_size_nm), name=name)


def _to_gray(img: np.ndarray, name: str) -> np.ndarray:
    if img is None:
        raise OSError(f"{name}: could not decode the image")
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[2] in (3, 4):
        import cv2

        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        return cv2.cvtColor(np.ascontiguousarray(img), code)
    if img.ndim == 3 and img.shape[2] == 1:
        return img[:, :, 0]
    raise ValueError(f"{name}: expected a 2-D grey or colour image, got shape {img.shape}")


def read_image_file(path: Path, pixel_size_nm: float | None) -> Any:
    """Read one image file of a folder (any format :func:`antema_fast.io.read` takes)."""
    from ..io import read

    return read(path, pixel_size_nm=pixel_size_nm)


# ---------------------------------------------------------------------------------------------
# completeness of a file that may still be being written


def file_looks_complete(path: Path) -> bool:
    """Whether a file's bytes look complete for its format (cheap structural checks).

    JPEG must end with the EOI marker, PNG with the IEND chunk, and every strip/tile of a TIFF
    must lie inside the file. Other formats are judged by the reader succeeding.
    """
    suffix = path.suffix.lower()
    try:
        size = path.stat().st_size
        if size == 0:
            return False
        if suffix in (".jpg", ".jpeg"):
            with path.open("rb") as fh:
                fh.seek(max(0, size - 16))
                tail = fh.read()
            return tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
        if suffix == ".png":
            with path.open("rb") as fh:
                fh.seek(max(0, size - 12))
                tail = fh.read()
            return tail[4:8] == b"IEND"
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tf:
                if not tf.pages:
                    return False
                for page in tf.pages:
                    offsets = getattr(page, "dataoffsets", ())
                    counts = getattr(page, "databytecounts", ())
                    for off, cnt in zip(offsets, counts, strict=False):
                        if off + cnt > size:
                            return False
            return True
    except Exception:  # noqa: BLE001 - any failure to parse means "not complete yet"
        return False
    return True


def _is_candidate(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or name.startswith("~"):
        return False
    if path.suffix.lower() in _PARTIAL_SUFFIXES:
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _list_folder(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{folder}: the stream folder does not exist") from exc
    return sorted((p for p in entries if _is_candidate(p)), key=lambda p: natural_key(p.name))


# ---------------------------------------------------------------------------------------------
# sources


def folder_frames(
    folder: Path, pixel_size_nm: float | None, frame_interval_s: float | None
) -> Iterator[FrameRef]:
    """Numbered images of a finished folder, in natural order."""
    paths = _list_folder(folder)
    if not paths:
        raise FileNotFoundError(
            f"{folder}: expected image files ({', '.join(sorted(IMAGE_SUFFIXES))}), found none"
        )
    for i, p in enumerate(paths):
        t = None if frame_interval_s is None else i * frame_interval_s
        yield FrameRef(i, p.name, t, partial(read_image_file, p, pixel_size_nm))


def video_frames(
    path: Path, pixel_size_nm: float | None, frame_interval_s: float | None
) -> Iterator[FrameRef]:
    """Frames of an MP4/AVI/... video decoded by OpenCV (converted to grey)."""
    import cv2

    if pixel_size_nm is None:
        raise ValueError(
            f"{path}: videos carry no pixel size; expected pixel_size_nm (--pixel-size NM), "
            "got None"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise OSError(f"{path}: OpenCV could not open this video")
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
        interval = frame_interval_s
        if interval is None and fps and math.isfinite(fps) and fps > 0:
            interval = 1.0 / fps
        i = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            gray = _to_gray(img, f"{path} frame {i}")
            t = None if interval is None else i * interval
            name = f"{path.name}#{i}"
            yield FrameRef(i, name, t, partial(_micrograph_from_array, gray, pixel_size_nm, name))
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise OSError(f"{path}: the video has no frames that OpenCV can decode")


def file_frames(
    path: Path, pixel_size_nm: float | None, frame_interval_s: float | None
) -> Iterator[FrameRef]:
    """Frames of a stack or series in one microscope file, via :func:`antema_fast.io.iter_frames`.

    ``iter_frames`` reads lazily; each frame is read when the reading stage asks for the next
    one, so the reading stage still runs in its own thread.
    """
    from ..io import iter_frames

    frames = iter_frames(path, pixel_size_nm=pixel_size_nm)
    try:
        yield from _file_refs(path, frames, frame_interval_s)
    finally:
        close = getattr(frames, "close", None)
        if callable(close):
            close()


def _file_refs(
    path: Path, frames: Iterable[Any], frame_interval_s: float | None
) -> Iterator[FrameRef]:
    t0: float | None = None
    for i, mg in enumerate(frames):
        ts = getattr(mg, "timestamp_s", None)
        if ts is not None and not (isinstance(ts, float) and math.isnan(ts)):
            t0 = float(ts) if t0 is None else t0
            t: float | None = float(ts) - t0
        else:
            t = None if frame_interval_s is None else i * frame_interval_s
        yield FrameRef(i, getattr(mg, "name", f"{path.name}#{i}"), t, partial(_same, mg))


def iterable_frames(
    frames: Iterable[Any], pixel_size_nm: float | None, frame_interval_s: float | None
) -> Iterator[FrameRef]:
    """Frames of any Python iterable of 2-D arrays (or Micrographs)."""
    for i, item in enumerate(frames):
        t = None if frame_interval_s is None else i * frame_interval_s
        name = f"frame{i:06d}"
        if hasattr(item, "data") and hasattr(item, "pixel_size_nm"):
            yield FrameRef(i, getattr(item, "name", name), t, partial(_same, item))
            continue
        arr = np.asarray(item)
        if arr.ndim != 2:
            raise ValueError(f"iterable source, frame {i}: expected a 2-D array, got {arr.shape}")
        yield FrameRef(i, name, t, partial(_micrograph_from_array, arr, pixel_size_nm, name))


@dataclass
class LiveFolder:
    """Watch a folder that an acquisition is still writing and yield each frame once it is complete.

    A file is complete when its size and modification time are unchanged over two polls at least
    ``settle_s`` apart and its bytes pass :func:`file_looks_complete`. Frames are released in
    natural-sort order: an earlier file still being written holds back later ones until it
    completes, or until it has not changed for ``quiet_timeout_s`` (then it is reported as
    skipped, reason ``"incomplete"``). The watch ends after ``quiet_timeout_s`` without a new
    complete frame, or when :meth:`stop` is called.
    """

    folder: Path
    pixel_size_nm: float | None
    frame_interval_s: float | None = None
    poll_s: float = 0.1
    settle_s: float = 0.2
    quiet_timeout_s: float = 10.0
    on_skip: Callable[[SkippedFrame], None] | None = None
    _stopped: bool = False

    def stop(self) -> None:
        """Ask the watch to end at its next poll."""
        self._stopped = True

    def _read_when_ready(self, path: Path) -> Any:
        """Read a file that looked complete; if reading fails, retry while the file changes.

        Formats without a structural completeness check (DM, MRC, …) can look complete while
        the acquisition has only paused; the read is retried until the file has not changed
        for ``quiet_timeout_s``, and only then is the error raised.
        """
        last_change = time.monotonic()
        sig = None
        while True:
            try:
                return read_image_file(path, self.pixel_size_nm)
            except Exception:
                st = path.stat()
                now = time.monotonic()
                if (st.st_size, st.st_mtime_ns) != sig:
                    sig, last_change = (st.st_size, st.st_mtime_ns), now
                if self._stopped or now - last_change >= self.quiet_timeout_s:
                    raise
                time.sleep(self.poll_s)

    def __iter__(self) -> Iterator[FrameRef]:
        folder = Path(self.folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: the live folder does not exist")
        done: set[str] = set()
        seen: dict[str, tuple[int, float, float]] = {}  # name -> (size, mtime, first seen same)
        index = 0
        last_activity = time.monotonic()
        while not self._stopped:
            paths = [p for p in _list_folder(folder) if p.name not in done]
            released = False
            blocked = False  # an earlier file is not ready: later ones wait (in-order release)
            for p in paths:
                now = time.monotonic()
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                sig = (st.st_size, st.st_mtime_ns)
                prev = seen.get(p.name)
                if prev is None or prev[:2] != sig:
                    # new or still changing; keep recording the later files' signatures so
                    # that a backlog settles in one period, not one file per period
                    seen[p.name] = (sig[0], sig[1], now)
                    last_activity = now
                    blocked = True
                    continue
                if blocked:
                    continue
                stable_for = now - prev[2]
                if stable_for >= self.settle_s and file_looks_complete(p):
                    done.add(p.name)
                    seen.pop(p.name, None)
                    t = None if self.frame_interval_s is None else index * self.frame_interval_s
                    yield FrameRef(index, p.name, t, partial(self._read_when_ready, p))
                    index += 1
                    released = True
                    last_activity = time.monotonic()
                    continue
                if stable_for >= self.quiet_timeout_s and any(
                    q.name not in done and q != p for q in paths
                ):
                    # stuck incomplete while later files exist: give up on it, say so
                    done.add(p.name)
                    seen.pop(p.name, None)
                    if self.on_skip is not None:
                        self.on_skip(SkippedFrame(index, p.name, "incomplete"))
                    index += 1
                    continue
                blocked = True
            if released:
                continue
            if time.monotonic() - last_activity >= self.quiet_timeout_s:
                for p in paths:
                    if p.name not in done:
                        if self.on_skip is not None:
                            self.on_skip(SkippedFrame(index, p.name, "incomplete"))
                        index += 1
                return
            time.sleep(self.poll_s)


def open_source(
    source: Any,
    *,
    pixel_size_nm: float | None,
    frame_interval_s: float | None,
    live: bool,
    quiet_timeout_s: float,
    poll_s: float,
    on_skip: Callable[[SkippedFrame], None] | None,
) -> tuple[Iterator[FrameRef], Callable[[], None] | None]:
    """Pick the source kind; return the frame iterator and, for live folders, a stop function."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if live:
            watcher = LiveFolder(
                path,
                pixel_size_nm,
                frame_interval_s,
                poll_s=poll_s,
                settle_s=max(poll_s, 2 * poll_s),
                quiet_timeout_s=quiet_timeout_s,
                on_skip=on_skip,
            )
            return iter(watcher), watcher.stop
        if path.is_dir():
            return folder_frames(path, pixel_size_nm, frame_interval_s), None
        if path.suffix.lower() in VIDEO_SUFFIXES:
            if pixel_size_nm is None:  # checked now, not at the first frame
                raise ValueError(
                    f"{path}: videos carry no pixel size; expected pixel_size_nm "
                    "(--pixel-size NM), got None"
                )
            return video_frames(path, pixel_size_nm, frame_interval_s), None
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        return file_frames(path, pixel_size_nm, frame_interval_s), None
    if live:
        raise ValueError(f"live=True needs a folder path, got {type(source).__name__}")
    if isinstance(source, np.ndarray) and source.ndim == 3:
        return iterable_frames(iter(source), pixel_size_nm, frame_interval_s), None
    if isinstance(source, Iterable):
        return iterable_frames(source, pixel_size_nm, frame_interval_s), None
    raise TypeError(
        "source: expected a file, a folder, a video or an iterable of 2-D arrays, "
        f"got {type(source).__name__}"
    )
