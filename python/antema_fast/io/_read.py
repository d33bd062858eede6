"""``read`` and ``iter_frames``: open any supported file, pick the image, attach the pixel size."""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import pathlib
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._detect import FORMAT_NAMES, detect_format
from ._micrograph import (
    Calibration,
    CalibrationWarning,
    Micrograph,
    ReadError,
    _check_pixel_size,
    anisotropy_note,
    normalise_image,
)
from ._source import Container, Signal

PathLike = str | os.PathLike[str]
SignalKey = str | int | None

_PLAIN = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP"}


@contextlib.contextmanager
def _translated(path: pathlib.Path, what: str) -> Iterator[None]:
    """Turn any failure of a third-party reader into a :class:`ReadError` naming the file."""
    try:
        yield
    except ReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure must become a ReadError
        detail = str(exc).strip() or type(exc).__name__
        if "imagecodecs" in detail:
            raise ReadError(
                f"{path}: its pixel data are compressed with a codec that needs the optional "
                f"package 'imagecodecs' ({detail}); install it (pip install imagecodecs) or "
                "save the file uncompressed"
            ) from exc
        raise ReadError(
            f"{path}: could not be read as {what} ({type(exc).__name__}: {detail}); the file "
            "may be truncated or damaged"
        ) from exc


def _check_path(path: PathLike) -> pathlib.Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"expected a file path (str or os.PathLike), got {type(path).__name__}")
    p = pathlib.Path(path)
    if not p.exists():
        raise ReadError(f"{p}: no such file")
    if p.is_dir():
        raise ReadError(f"{p}: is a directory, expected a microscope file")
    if not p.is_file():
        raise ReadError(f"{p}: is not a regular file")
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise ReadError(f"{p}: cannot be opened ({exc.strerror or exc})") from exc
    if size == 0:
        raise ReadError(f"{p}: is empty (0 bytes)")
    return p


def _extract(path: pathlib.Path, kind: str, member: str | None, out: pathlib.Path) -> pathlib.Path:
    if kind == "gzip":
        name = path.name[:-3] if path.name.lower().endswith(".gz") else path.stem + ".data"
        target = out / (pathlib.Path(name).name or "data")
        with gzip.open(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return target
    with zipfile.ZipFile(path) as z:
        infos = [
            i
            for i in z.infolist()
            if not i.is_dir()
            and not i.filename.startswith("__MACOSX/")
            and not pathlib.PurePosixPath(i.filename).name.startswith(".")
        ]
        names = [i.filename for i in infos]
        if member is None:
            if not infos:
                raise ReadError(f"{path}: an empty zip archive")
            if len(infos) > 1:
                raise ReadError(
                    f"{path}: a zip archive with {len(infos)} files ({', '.join(names)}); pass "
                    "member=<file name> to choose one"
                )
            info = infos[0]
        else:
            matches = [
                i
                for i in infos
                if i.filename == member or pathlib.PurePosixPath(i.filename).name == member
            ]
            if not matches:
                raise ReadError(
                    f"{path}: the zip archive has no member {member!r}; it holds {', '.join(names)}"
                )
            info = matches[0]
        target = out / pathlib.PurePosixPath(info.filename).name
        with z.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return target


def _open_container(path: pathlib.Path, member: str | None) -> Container:
    kind = detect_format(path)
    what = FORMAT_NAMES[kind]
    if kind in ("zip", "gzip"):
        tmp = tempfile.TemporaryDirectory(prefix="antema_read_")
        try:
            with _translated(path, what):
                inner = _extract(path, kind, member, pathlib.Path(tmp.name))
            if inner.stat().st_size == 0:
                raise ReadError(f"{path}: the archive member {inner.name!r} is empty (0 bytes)")
            container = _open_container(inner, None)
        except BaseException:
            tmp.cleanup()
            raise
        container.closers.insert(0, tmp.cleanup)
        container.metadata["archive"] = str(path)
        container.metadata["archive_member"] = inner.name
        return container
    if member is not None:
        raise ReadError(f"{path}: member={member!r} was given, but the file is not a zip archive")
    with _translated(path, what):
        if kind == "dm":
            from ._dm import open_dm

            return open_dm(path)
        if kind == "tiff":
            from ._tiff import open_tiff

            return open_tiff(path)
        if kind == "hdf5":
            from ._hdf5 import open_hdf5

            return open_hdf5(path)
        if kind == "ser":
            from ._ser import open_ser

            return open_ser(path)
        if kind == "emi":
            from ._ser import open_ser, sers_of_emi

            merged = Container(format="TIA EMI/SER", signals=[])
            try:
                for ser in sers_of_emi(path):
                    part = open_ser(ser)
                    merged.signals.extend(part.signals)
                    merged.closers.extend(part.closers)
            except BaseException:
                merged.close()
                raise
            return merged
        if kind == "mrc":
            from ._mrc import open_mrc

            return open_mrc(path)
        from ._plain import open_plain

        return open_plain(path, _PLAIN[kind])


def _describe(s: Signal) -> str:
    return f"{s.name!r} is {s.problem}" if s.problem else f"{s.name!r} is an image"


def _choose_signal(container: Container, path: pathlib.Path, key: SignalKey) -> Signal:
    signals = container.signals
    names = ", ".join(repr(s.name) for s in signals)
    if key is None:
        for s in signals:
            if s.problem is None:
                return s
        if len(signals) == 1:
            raise ReadError(
                f"{path}: holds no image that can be measured: it is {signals[0].problem}"
            )
        detail = "; ".join(_describe(s) for s in signals)
        raise ReadError(f"{path}: holds no image that can be measured ({detail})")
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        if not 0 <= int(key) < len(signals):
            raise ReadError(
                f"{path}: signal={int(key)} requested, the file has {len(signals)} signals "
                f"({names})"
            )
        chosen = signals[int(key)]
    else:
        found = [s for s in signals if s.name == key] or [
            s for s in signals if s.name.lower() == str(key).lower()
        ]
        if not found:
            raise ReadError(f"{path}: no signal named {key!r}; the file holds {names}")
        chosen = found[0]
    if chosen.problem:
        raise ReadError(f"{path}: signal {chosen.name!r} is {chosen.problem}")
    return chosen


def _calibration(
    signal: Signal, path: pathlib.Path, user: float | None, require: bool
) -> Calibration | None:
    if user is not None:
        return Calibration(user, user, "user")
    if signal.calibration is not None:
        return signal.calibration
    if require:
        note = signal.calibration_note or "it has no calibration"
        raise ReadError(
            f"{path}: no pixel size in the file ({note}); pass the pixel size in nm with "
            f"pixel_size_nm=... (Python) or --pixel-size (command line){_scale_bar_hint(signal)}"
        )
    return None


def _scale_bar_hint(signal: Signal) -> str:
    """For the missing-calibration error: a clause on a scale bar burned into the first frame
    (its length in px gives the pixel size with its label), or "" when none is found."""
    if int(np.prod(signal.shape)) > 10**8:  # not worth reading a huge frame for a hint
        return ""
    try:
        frame = np.asarray(signal.read_frame(0))
        from .._scalebar import find_scale_bar
        from ._micrograph import _coloured_bar, coloured_pixels

        bar = None
        if frame.ndim == 3:  # RGB(A): a grey picture has equal channels, a bar keeps its value
            rgb = frame[..., :3]
            coloured = coloured_pixels(rgb)
            if coloured.any():  # a coloured bar among coloured marks
                bar = _coloured_bar(coloured)
            frame = rgb.mean(axis=2)
        if bar is None:
            bar = find_scale_bar(frame)
    except Exception:  # a hint must never hide the error it belongs to
        return ""
    if bar is None:
        return ""
    x, y = bar["bar"][:2]
    w = bar["length_px"]
    return (
        f". A scale bar {w} px long seems burned into the image (column {x}, row {y}): the "
        f"pixel size is the length on its label, in nm, divided by {w}: give that length with "
        "--scale-bar-nm NM (Settings(scale_bar_nm=NM)), which also leaves the bar out of the "
        "analysis"
    )


def _label(path: pathlib.Path, container: Container, signal: Signal, frame: int | None) -> str:
    parts = []
    if len(container.signals) > 1:
        parts.append(f"signal {signal.name!r}")
    if frame is not None and signal.frame_count > 1:
        parts.append(f"frame {frame}")
    return f"{path} [{', '.join(parts)}]" if parts else str(path)


class _Opened:
    """A file opened for reading: the chosen signal, its calibration and the common metadata."""

    def __init__(
        self,
        path: PathLike,
        pixel_size_nm: float | None,
        signal: SignalKey,
        require_calibration: bool,
        member: str | None,
    ) -> None:
        user = None if pixel_size_nm is None else _check_pixel_size(pixel_size_nm, "pixel_size_nm")
        self.path = _check_path(path)
        self.container = _open_container(self.path, member)
        try:
            self.signal = _choose_signal(self.container, self.path, signal)
            self.calibration = _calibration(self.signal, self.path, user, require_calibration)
        except BaseException:
            self.container.close()
            raise
        self.notes: list[tuple[type[Warning], str]] = []
        if self.calibration is not None:
            note = anisotropy_note(self.calibration, str(self.path))
            if note:
                self.notes.append((CalibrationWarning, note))
        md: dict[str, Any] = {"format": self.container.format}
        md.update(self.container.metadata)
        md.update(self.signal.metadata)
        md["signals"] = [s.name for s in self.container.signals]
        if len(self.container.signals) > 1:
            others = "; ".join(_describe(s) for s in self.container.signals if s is not self.signal)
            how = "requested" if signal is not None else "the first measurable image"
            md["signal_choice"] = (
                f"read {self.signal.name!r} ({how}); the file also holds: {others}. "
                "Pass signal=<name or index> to read another."
            )
        if user is not None and self.signal.calibration is not None:
            c = self.signal.calibration
            md["file_pixel_size_nm"] = (c.x_nm, c.y_nm)
            md["file_pixel_size_source"] = c.source
        self.metadata = md
        member_name = self.container.metadata.get("archive_member")
        self.name = pathlib.Path(member_name).stem if member_name else None

    def frame(self, index: int, frame_index: int | None) -> Micrograph:
        s = self.signal
        label = _label(self.path, self.container, s, frame_index)
        notes: list[tuple[type[Warning], str]] = []
        found: dict[str, Any] = {}
        with _translated(self.path, self.container.format):
            data = normalise_image(s.read_frame(index), label, notes, found)
            stamp = s.timestamp(index) if s.timestamp is not None else None
        for category, message in notes:
            warnings.warn(message, category, stacklevel=3)
        cal = self.calibration
        if cal is None:
            px = py = mean = math.nan
            source = "none"
        else:
            px, py, source = cal.x_nm, cal.y_nm, cal.source
            mean = math.sqrt(px * py)
        return Micrograph(
            data=data,
            pixel_size_nm=mean,
            pixel_size_x_nm=px,
            pixel_size_y_nm=py,
            pixel_size_source=source,
            path=self.path,
            frame_index=frame_index,
            frame_count=s.frame_count,
            timestamp_s=stamp,
            signal=s.name,
            metadata={**self.metadata, **found},
            warnings=tuple(m for _, m in self.notes + notes),
            _name=self.name,
        )

    def warn(self) -> None:
        for category, message in self.notes:
            warnings.warn(message, category, stacklevel=4)

    def close(self) -> None:
        self.container.close()


def read(
    path: PathLike,
    *,
    pixel_size_nm: float | None = None,
    frame: int | None = None,
    signal: SignalKey = None,
    require_calibration: bool = True,
    member: str | None = None,
) -> Micrograph:
    """Read one micrograph and its pixel size from a microscope file.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Its format is recognised from its content, not its extension: Gatan
        DM3/DM4, TIA SER (or its EMI), Velox and Berkeley EMD, HyperSpy ``.hspy``, MRC, TIFF
        (ImageJ, OME, Gatan, FEI/Thermo, Zeiss, TVIPS, Olympus), PNG, JPEG, BMP, and any of
        these inside a ``.zip`` or ``.gz`` archive.
    pixel_size_nm : float, optional
        Pixel size in nm. When given it always wins over the file's (recorded as ``"user"``;
        the file's own value is kept in ``metadata["file_pixel_size_nm"]``).
    frame : int, optional
        Which frame of a stack to read (default: the first). ``frame_count`` says how many
        there are; use :func:`iter_frames` to go through all of them.
    signal : str or int, optional
        Which signal of a multi-signal file (detector name, image name, or index in
        ``metadata["signals"]``). Default: the first image that can be measured.
    require_calibration : bool, default True
        With False, a file without a pixel size is read anyway, with ``pixel_size_nm`` NaN and
        source ``"none"`` (for segmentation or display only; measurement refuses NaN).
    member : str, optional
        The file to read inside a zip archive holding several.

    Returns
    -------
    Micrograph

    Raises
    ------
    ReadError
        The file is missing, empty, a directory, truncated or damaged, not a microscope
        file, holds no measurable image (a spectrum, a diffraction pattern, colour), has
        NaN/inf pixels, or has no pixel size and none was given.
    ValueError
        ``pixel_size_nm`` is not a positive finite number.

    Warns
    -----
    CalibrationWarning
        x and y pixel sizes differ by more than 0.5 % (both kept, geometric mean used).
    DataConversionWarning
        Complex pixels were replaced by their modulus.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "img.tif"
    >>> tifffile.imwrite(f, np.zeros((8, 8), np.uint16), imagej=True,
    ...                  resolution=(1 / 0.25, 1 / 0.25), metadata={"unit": "nm"})
    >>> m = read(f)
    >>> m.pixel_size_nm, m.pixel_size_source
    (0.25, 'file:ImageJ unit + X/YResolution')
    """
    opened = _Opened(path, pixel_size_nm, signal, require_calibration, member)
    try:
        n = opened.signal.frame_count
        if frame is None:
            index, frame_index = 0, (0 if n > 1 else None)
        else:
            if isinstance(frame, bool) or not isinstance(frame, int | np.integer):
                raise TypeError(f"frame: expected an int, got {type(frame).__name__}")
            if not 0 <= int(frame) < n:
                raise ReadError(
                    f"{opened.path}: frame {int(frame)} requested, the file has {n} "
                    f"frame{'s' if n != 1 else ''} (0 to {n - 1})"
                )
            index = int(frame)
            frame_index = index if n > 1 else None
        micrograph = opened.frame(index, frame_index)
    finally:
        opened.close()
    opened.warn()
    return micrograph


class FrameIterator(Iterator[Micrograph]):
    """Frames of a stack, read one at a time (see :func:`iter_frames`).

    The file stays open until the last frame has been read, :meth:`close` is called, or the
    ``with`` block ends. ``len()`` is the number of frames.
    """

    def __init__(
        self,
        path: PathLike,
        pixel_size_nm: float | None,
        signal: SignalKey,
        require_calibration: bool,
        member: str | None,
    ) -> None:
        self._opened: _Opened | None = _Opened(
            path, pixel_size_nm, signal, require_calibration, member
        )
        self.frame_count = self._opened.signal.frame_count
        self.signal = self._opened.signal.name
        self._next = 0
        self._opened.warn()

    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> FrameIterator:
        return self

    def __next__(self) -> Micrograph:
        if self._opened is None or self._next >= self.frame_count:
            self.close()
            raise StopIteration
        i = self._next
        self._next += 1
        try:
            return self._opened.frame(i, i if self.frame_count > 1 else None)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def __enter__(self) -> FrameIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def iter_frames(
    path: PathLike,
    *,
    pixel_size_nm: float | None = None,
    signal: SignalKey = None,
    require_calibration: bool = True,
    member: str | None = None,
) -> FrameIterator:
    """Go through the frames of a stack or series one at a time, with flat memory.

    The file is opened and checked at once (so errors surface here); each frame is read from
    disk only when the iterator reaches it, so a stack larger than memory can be processed.
    A single image gives one frame.

    Parameters
    ----------
    path, pixel_size_nm, signal, require_calibration, member
        As for :func:`read`.

    Returns
    -------
    FrameIterator
        Yields :class:`Micrograph` objects with ``frame_index`` and, when the file stores
        one, ``timestamp_s``. Use it in a ``with`` block, or exhaust it, to close the file.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "stack.tif"
    >>> tifffile.imwrite(f, np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    >>> [m.name for m in iter_frames(f, pixel_size_nm=0.5)]
    ['stack_f0000', 'stack_f0001', 'stack_f0002']
    """
    return FrameIterator(path, pixel_size_nm, signal, require_calibration, member)
