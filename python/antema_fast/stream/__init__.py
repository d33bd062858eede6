"""In situ movies in real time: streaming analysis, particle tracking and time series.

:func:`stream` analyses a movie frame by frame with reading, segmentation and measurement running
concurrently in three threads; :func:`run` adds the incremental outputs (:class:`StreamWriter`),
tracking (:class:`Tracker`) and the pictures at the end, and is what ``antema stream`` calls.

Every stage is the package's own: frames are read by :mod:`antema_fast.io` (OpenCV for videos and
plain images), segmented by :class:`antema_fast.segment.Segmenter` and separated, measured and
summarised by :func:`antema_fast.pipeline.finish`, so a frame of a stream gives exactly what
:func:`antema_fast.analyze` gives for the same image.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._pipeline import FrameResult, FrameStream, Policy, frame_series
from ._sources import SkippedFrame, natural_key
from ._tracking import Tracker
from ._writer import StreamWriter

__all__ = [
    "FrameResult",
    "FrameStream",
    "SkippedFrame",
    "StreamWriter",
    "Tracker",
    "frame_series",
    "natural_key",
    "run",
    "stream",
]

_POLICIES = ("all", "latest")


def stream(
    source: Any,
    *,
    settings: Any = None,
    segmenter: Any = None,
    track: bool | Tracker = False,
    every: int = 1,
    live: bool = False,
    pixel_size_nm: float | None = None,
    frame_interval_s: float | None = None,
    policy: Policy = "all",
    quiet_timeout_s: float = 10.0,
    poll_s: float = 0.1,
    queue_size: int = 4,
    finish: Callable[..., Any] | None = None,
) -> FrameStream:
    """Analyse a movie frame by frame; yield a :class:`FrameResult` per frame, in frame order.

    Parameters
    ----------
    source : path or iterable
        A stack or series in one microscope file (DM3/DM4, TIFF, MRC, EMD, SER; read by
        :func:`antema_fast.io.iter_frames`), a video (MP4, AVI, …; OpenCV), a folder of numbered
        images (natural sort), a folder still being written (``live=True``), a 3-D array or any
        iterable of 2-D arrays or Micrographs.
    settings : Settings, optional
        The analysis settings (defaults: ``Settings()``).
    segmenter : Segmenter, optional
        A loaded segmenter (anything with ``.segment(image, pixel_size_nm=...)``); default
        ``Segmenter(settings)``, loaded once for the whole movie.
    track : bool or Tracker
        Link particles between frames (``True``: a :class:`Tracker` with its defaults). Each
        frame's table then has a ``track_id`` column.
    every : int
        Analyse every ``every``-th frame only (frame indices stay those of the source).
    live : bool
        ``source`` is a folder that an acquisition is still writing: each new file is analysed
        once it is completely written; the stream ends after ``quiet_timeout_s`` without a new
        frame (or when closed / on Ctrl-C).
    pixel_size_nm : float, optional
        Pixel size for sources without one (videos, plain images, arrays); for microscope files
        it is passed on to the reader.
    frame_interval_s : float, optional
        Seconds between frames, for ``time_s`` where the source does not say it.
    policy : {"all", "latest"}
        Live mode only: when frames arrive faster than they are analysed, ``"all"`` analyses
        every frame and falls behind; ``"latest"`` skips to the newest ready frame. Skipped
        frames are counted (:attr:`FrameResult.skipped`) and listed
        (:attr:`FrameStream.skipped_frames`).
    quiet_timeout_s, poll_s : float
        Live mode: end after this many seconds without a new frame; poll the folder this often.
    queue_size : int
        Capacity of each queue between stages (bounded, so memory stays flat).
    finish : callable, optional
        Replaces :func:`antema_fast.pipeline.finish` (separation + measurement + summary of a
        segmented frame); for tests and experiments. With :class:`Settings` it is also given
        ``overlays=`` (:func:`antema_fast.pipeline.micrograph_overlays` of the frame).

    Returns
    -------
    FrameStream
        An iterator of :class:`FrameResult`; use it in ``for`` or ``with``; ``close()`` stops
        the threads.

    Examples
    --------
    >>> import numpy as np
    >>> from antema_fast import Settings
    >>> frames = np.full((3, 64, 64), 200, np.uint8)
    >>> frames[:, 20:40, 20:40] = 30
    >>> s = Settings(backend="threshold", separation="none")
    >>> [fr.series["count"] for fr in stream(frames, settings=s, pixel_size_nm=1.0)]
    [1, 1, 1]
    """
    from .._settings import Settings
    from ._sources import open_source

    settings = Settings() if settings is None else settings
    if not isinstance(settings, Settings):
        raise TypeError(f"settings: expected antema_fast.Settings, got {type(settings).__name__}")
    if settings.scale_bar_nm is not None:
        raise ValueError(
            f"settings.scale_bar_nm={settings.scale_bar_nm!r}: a stream takes its pixel size from "
            "its frames' files or from pixel_size_nm (--pixel-size); the frames of a movie share "
            "one, so measure it once (antema analyze FRAME --scale-bar-nm NM reports it) and give "
            "it as pixel_size_nm"
        )
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"every: expected an integer ≥ 1, got {every!r}")
    if policy not in _POLICIES:
        raise ValueError(f"policy: expected one of {_POLICIES}, got {policy!r}")
    if policy == "latest" and not live:
        raise ValueError("policy='latest' applies to live folders only; got live=False")
    if not (quiet_timeout_s > 0 and poll_s > 0):
        raise ValueError(
            f"quiet_timeout_s and poll_s: expected numbers > 0, got {quiet_timeout_s!r}, {poll_s!r}"
        )
    if not isinstance(queue_size, int) or queue_size < 1:
        raise ValueError(f"queue_size: expected an integer ≥ 1, got {queue_size!r}")
    if pixel_size_nm is not None and not (math.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise ValueError(f"pixel_size_nm: expected a number > 0, got {pixel_size_nm!r}")
    if segmenter is None:
        from ..segment import Segmenter

        segmenter = Segmenter(settings)
    if finish is None:
        from ..pipeline import finish as _finish

        finish = _finish
    tracker: Tracker | None
    if isinstance(track, Tracker):
        tracker = track
    else:
        tracker = Tracker() if track else None

    skipped: list[SkippedFrame] = []
    lock = threading.Lock()

    def on_skip(s: SkippedFrame) -> None:
        with lock:
            skipped.append(s)

    refs, stop_source = open_source(
        source,
        pixel_size_nm=pixel_size_nm,
        frame_interval_s=frame_interval_s,
        live=live,
        quiet_timeout_s=quiet_timeout_s,
        poll_s=poll_s,
        on_skip=on_skip,
    )
    return FrameStream(
        refs,
        stop_source=stop_source,
        segmenter=segmenter,
        finish=finish,
        settings=settings,
        tracker=tracker,
        every=every,
        policy=policy,
        queue_size=queue_size,
        skipped=skipped,
        skipped_lock=lock,
    )


def run(
    source: Any,
    outdir: str | os.PathLike[str],
    *,
    formats: tuple[str, ...] = ("csv", "parquet"),
    plots: bool = True,
    movie: bool = False,
    movie_fps: float = 10.0,
    row_group_frames: int = 50,
    progress: Callable[[FrameResult], None] | None = None,
    max_frames: int | None = None,
    **stream_kwargs: Any,
) -> dict[str, Any]:
    """Stream a movie into ``outdir``: tables written as it runs, pictures at the end.

    Parameters
    ----------
    source, **stream_kwargs
        As for :func:`stream`.
    outdir : path
        Output folder (see :class:`StreamWriter` for its files; ``plots`` adds PNGs and
        ``movie`` an ``overlay.mp4`` of outlines and track ids).
    formats : tuple of {"csv", "parquet"}
        Table formats.
    progress : callable, optional
        Called with each :class:`FrameResult` after it is written.
    max_frames : int, optional
        Stop after this many analysed frames.

    Returns
    -------
    dict
        What ``manifest.json`` says (frames analysed and skipped, fps, files, …).

    Notes
    -----
    On Ctrl-C (``KeyboardInterrupt``) or any error, the threads are stopped, every file is
    closed so that it is complete and readable for the frames done, and the exception is raised
    again.
    """
    outdir = Path(outdir)
    frames = stream(source, **stream_kwargs)
    writer = StreamWriter(outdir, formats=formats, row_group_frames=row_group_frames)
    overlay = None
    interrupted = False
    t0 = time.perf_counter()
    try:
        if movie:
            from ._plots import OverlayMovie

            overlay = OverlayMovie(outdir / "overlay.mp4", fps=movie_fps)
        for fr in frames:
            writer.write(fr)
            if overlay is not None:
                overlay.write(fr)
            if progress is not None:
                progress(fr)
            if max_frames is not None and writer.frames >= max_frames:
                break
    except BaseException:
        interrupted = True
        raise
    finally:
        frames.close()
        if frames.tracker is not None:
            frames.tracker.finish()  # idempotent; the full events table is written from it
        if overlay is not None:
            overlay.close()
        settings = frames.settings
        manifest = {
            "source": str(source) if isinstance(source, (str, os.PathLike)) else repr(type(source)),
            "settings": settings.to_dict() if hasattr(settings, "to_dict") else None,
            "every": stream_kwargs.get("every", 1),
            "live": stream_kwargs.get("live", False),
            "policy": stream_kwargs.get("policy", "all"),
            "segmenter": frames.segmenter_info,
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        skipped = sorted(frames.skipped_frames, key=lambda s: s.index)
        extra: list[Path] = []
        plot_error: Exception | None = None
        if plots and writer.frames:
            from ._plots import plot_stream

            try:
                extra += plot_stream(writer, frames.tracker, outdir)
            except Exception as exc:  # noqa: BLE001 - the tables are closed first, then raised
                plot_error = exc
        if overlay is not None and overlay.path.exists():
            extra.append(overlay.path)
        writer.close(
            tracker=frames.tracker,
            skipped=skipped,
            manifest=manifest,
            interrupted=interrupted,
            extra_files=extra,
        )
        if plot_error is not None and not interrupted:
            raise plot_error
    import json

    return dict(json.loads((outdir / "manifest.json").read_text(encoding="utf-8")))


class _CallableModule(types.ModuleType):
    """``antema_fast.stream`` is both this package and its main function.

    ``import antema_fast.stream`` binds the package to the attribute ``antema_fast.stream``; making
    the package callable keeps ``antema_fast.stream(source, ...)`` working either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> FrameStream:
        return stream(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
