"""The threaded stream: reading → segmentation → measurement, joined by bounded queues.

Each stage runs in its own thread and takes its input in frame order, so results come out in
frame order. The C++ core and ONNX Runtime release the GIL, so the stages overlap and the
throughput approaches that of the slowest stage. A failure in any stage travels down the queues
as a :class:`_Failure` and is raised, unchanged, in the thread that iterates. Closing the iterator
(or leaving a ``with`` block, or Ctrl-C) stops every thread.
"""

from __future__ import annotations

import collections
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ._sources import FrameRef, SkippedFrame

Policy = Literal["all", "latest"]


@dataclass(frozen=True)
class FrameResult:
    """The analysis of one frame of a stream.

    Attributes
    ----------
    index : int
        Position of the frame in the source (0-based, counted before ``every`` subsampling).
    name : str
        File name, or ``"<file>#<index>"`` for frames of a stack or video.
    time_s : float or None
        Time of the frame in seconds from the first frame, when the source says it (file
        timestamps, video frame rate) or ``frame_interval_s`` was given; else None.
    result : AnalysisResult
        What :func:`antema_fast.pipeline.finish` returned for this frame.
    table : pandas.DataFrame
        ``result.table`` with ``frame`` and ``time_s`` columns in front (and ``track_id``
        when tracking).
    series : dict
        The frame's row of the time series: ``count``, ``coverage``, ``mean_diameter_nm``,
        ``sd_diameter_nm``, ``median_diameter_nm``, ``mean_circularity``, ….
    skipped : int
        Frames skipped so far (``policy="latest"`` or files that never completed).
    timings : dict
        Seconds spent per stage on this frame (``read``, ``segment``, ``measure``, ``track``).
    events : list of dict
        Tracking events decided at this frame (empty without tracking).
    segmentation : object
        The frame's segmentation (mask and probability), for overlays.
    """

    index: int
    name: str
    time_s: float | None
    result: Any
    table: Any
    series: dict[str, Any]
    skipped: int
    timings: dict[str, float]
    events: list[dict[str, Any]] = field(default_factory=list)
    segmentation: Any = field(default=None, repr=False)


class _End:
    pass


_END = _End()


@dataclass
class _Failure:
    exc: BaseException
    stage: str


def frame_series(
    index: int, name: str, time_s: float | None, table: Any, mask: np.ndarray | None
) -> dict[str, Any]:
    """The time-series row of one frame.

    ``coverage`` is the fraction of the image's pixels that segmentation marked as particle
    (border-touching particles included, since they cover the support too); the diameter and
    circularity statistics are over the measured particles (SD with ``ddof=1``; NaN when
    undefined).
    """
    d = np.asarray(table["equivalent_diameter_nm"], dtype=float) if len(table) else np.empty(0)
    c = np.asarray(table["circularity"], dtype=float) if len(table) else np.empty(0)
    c = c[np.isfinite(c)]
    coverage = (
        float(np.count_nonzero(mask)) / mask.size if mask is not None and mask.size else math.nan
    )
    return {
        "frame": index,
        "time_s": math.nan if time_s is None else float(time_s),
        "name": name,
        "count": int(d.size),
        "coverage": coverage,
        "mean_diameter_nm": float(d.mean()) if d.size else math.nan,
        "sd_diameter_nm": float(d.std(ddof=1)) if d.size > 1 else math.nan,
        "median_diameter_nm": float(np.median(d)) if d.size else math.nan,
        "mean_circularity": float(c.mean()) if c.size else math.nan,
    }


class _Workers:
    """The three stage threads and their queues.

    The threads hold this object, never the :class:`FrameStream` the user holds, so that a
    stream dropped without ``close()`` is garbage-collected and its ``__del__`` stops them.
    """

    def __init__(
        self,
        refs: Iterator[FrameRef],
        *,
        stop_source: Callable[[], None] | None,
        segmenter: Any,
        finish: Callable[..., Any],
        settings: Any,
        tracker: Any | None,
        every: int,
        policy: Policy,
        queue_size: int,
        skipped: list[SkippedFrame],
        skipped_lock: threading.Lock,
    ) -> None:
        self._refs = refs
        self._stop_source = stop_source
        self._segmenter = segmenter
        self._finish = finish
        self._settings = settings
        self.tracker = tracker
        self._every = every
        self._policy = policy
        self.skipped_frames = skipped
        self._skipped_lock = skipped_lock
        self._stop = threading.Event()
        size = 1 if policy == "latest" else queue_size
        self._q_read: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._q_seg: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._q_out: queue.Queue[Any] = queue.Queue(maxsize=max(queue_size, 1))
        self._finished = False
        self.frames_done = 0
        self.final_events: list[dict[str, Any]] = []
        info = getattr(segmenter, "info", None)
        try:
            self._segmenter_info = info() if callable(info) else None
        except Exception:  # noqa: BLE001 - provenance only
            self._segmenter_info = None
        self._threads = [
            threading.Thread(target=self._guard, args=("read", self._read), daemon=True),
            threading.Thread(target=self._guard, args=("segment", self._segment), daemon=True),
            threading.Thread(target=self._guard, args=("measure", self._measure), daemon=True),
        ]
        for i, th in enumerate(self._threads):
            th.name = f"antema-stream-{('read', 'segment', 'measure')[i]}"
            th.start()

    # -- queue helpers that never block forever once stop is set --------------------------

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self._stop.is_set():
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                continue
        return _END

    def _guard(self, stage: str, body: Callable[[], None]) -> None:
        out = {"read": self._q_read, "segment": self._q_seg, "measure": self._q_out}[stage]
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put(out, _Failure(exc, stage))

    def _skip(self, ref: FrameRef, reason: str) -> None:
        with self._skipped_lock:
            self.skipped_frames.append(SkippedFrame(ref.index, ref.name, reason))

    # -- stages ----------------------------------------------------------------------------

    def _load(self, ref: FrameRef, before: float = 0.0) -> tuple[FrameRef, Any, dict[str, float]]:
        t0 = time.perf_counter()
        mg = ref.load()
        return ref, mg, {"read": before + time.perf_counter() - t0}

    def _read(self) -> None:
        try:
            if self._policy == "latest":
                self._read_latest()
                return
            # stacks and videos decode while the iterator advances: that time is reading too
            # (a live folder's iterator waits for files instead, which is not reading)
            count_next = self._stop_source is None
            it = iter(self._refs)
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    ref = next(it)
                except StopIteration:
                    self._put(self._q_read, _END)
                    return
                if ref.index % self._every:
                    continue
                before = time.perf_counter() - t0 if count_next else 0.0
                if not self._put(self._q_read, self._load(ref, before)):
                    return
        finally:
            close = getattr(self._refs, "close", None)
            if callable(close):
                try:
                    close()  # a stack file is closed now, not at garbage collection
                except (RuntimeError, ValueError):
                    pass  # still running in the discovery thread: it stops on its own

    def _read_latest(self) -> None:
        """Skip-to-newest: a discovery thread lists ready frames, this one reads only the newest."""
        pending: collections.deque[Any] = collections.deque()
        cond = threading.Condition()
        failure: list[BaseException] = []

        def discover() -> None:
            try:
                for ref in self._refs:
                    if self._stop.is_set():
                        break
                    if ref.index % self._every:
                        continue
                    with cond:
                        pending.append(ref)
                        cond.notify()
            except BaseException as exc:  # noqa: BLE001 - re-raised by the reading stage
                failure.append(exc)
            with cond:
                pending.append(_END)
                cond.notify()

        th = threading.Thread(target=discover, name="antema-stream-discover", daemon=True)
        th.start()

        def take_newest(block: bool) -> Any:
            """The newest pending frame (older pending ones are counted as skipped).

            Returns ``_END`` at the end of the source (or on stop) and None when ``block`` is
            false and no frame is pending.
            """
            with cond:
                while block and not pending and not self._stop.is_set():
                    cond.wait(timeout=0.05)
                refs = [r for r in pending if r is not _END]
                ended = len(refs) != len(pending)
                if not refs:
                    return _END if (ended or block) else None
                pending.clear()
                if ended:
                    pending.append(_END)
            for r in refs[:-1]:
                self._skip(r, "policy latest: a newer frame was ready")
            return refs[-1]

        ref = take_newest(block=True)
        while ref is not _END and not self._stop.is_set():
            item = self._load(ref)
            while not self._stop.is_set():
                try:
                    self._q_read.put(item, timeout=0.02)
                    break
                except queue.Full:
                    newer = take_newest(block=False)
                    if newer is not None and newer is not _END:
                        # the pipeline is still busy and a newer frame is ready: take that one
                        self._skip(ref, "policy latest: a newer frame was ready")
                        ref = newer
                        item = self._load(ref)
            ref = take_newest(block=True)
        th.join(timeout=1.0)
        if failure:
            raise failure[0]
        self._put(self._q_read, _END)

    def _segment(self) -> None:
        from .._settings import Settings
        from ..pipeline import (
            check_and_merge_scale,
            image_settings,
            micrograph_overlays,
            segmentation_input,
        )

        while True:
            item = self._get(self._q_read)
            if item is _END or isinstance(item, _Failure):
                self._put(self._q_seg, item)
                return
            ref, mg, timings = item
            t0 = time.perf_counter()
            image = mg.data
            settings = self._settings
            overlays = None
            prepared: dict[str, Any] = {}
            if isinstance(settings, Settings):  # ignore_regions (and a data or scale bar) filled
                overlays = micrograph_overlays(mg)
                settings = image_settings(image, settings, overlays)
                image = segmentation_input(image, settings, f"frame {ref.index}", prepared)
            seg = self._segmenter.segment(image, pixel_size_nm=mg.pixel_size_nm)
            if isinstance(getattr(seg, "extra", None), dict):
                seg.extra.update(prepared)
            timings["segment"] = time.perf_counter() - t0
            if (
                getattr(self._settings, "check_scale", False)
                and getattr(self._settings, "auto_scale", False)
                and hasattr(self._segmenter, "merge_wide")
            ):
                # as analyze does for an image (without its warning, which every frame repeats)
                seg = check_and_merge_scale(
                    self._segmenter,
                    image,
                    seg,
                    settings,
                    f"frame {ref.index}",
                    timings,
                    pixel_size_nm=mg.pixel_size_nm,
                    warn=False,
                )
            if not self._put(self._q_seg, (ref, mg, seg, timings, settings, overlays)):
                return

    def _measure(self) -> None:
        while True:
            item = self._get(self._q_seg)
            if item is _END or isinstance(item, _Failure):
                if item is _END and self.tracker is not None:
                    final = self.tracker.finish()
                    if final:
                        self._put(self._q_out, ("events", final))
                self._put(self._q_out, item)
                return
            ref, mg, seg, timings, settings, overlays = item
            t0 = time.perf_counter()
            found = {} if overlays is None else {"overlays": overlays}
            res = self._finish(
                mg,
                seg,
                settings,
                timings=dict(timings),
                segmenter_info=self._segmenter_info,
                **found,
            )
            timings["measure"] = time.perf_counter() - t0
            table = res.table.copy()
            table.insert(0, "frame", ref.index)
            table.insert(1, "time_s", math.nan if ref.time_s is None else float(ref.time_s))
            events: list[dict[str, Any]] = []
            if self.tracker is not None:
                t1 = time.perf_counter()
                particles = list(res.particles)
                if len(particles) != len(table):
                    raise RuntimeError(
                        f"{ref.name}: expected one particle mask per table row, got "
                        f"{len(particles)} masks for {len(table)} rows"
                    )
                ids, events = self.tracker.update(ref.index, ref.time_s, table, particles)
                table.insert(2, "track_id", ids)
                timings["track"] = time.perf_counter() - t1
            series = frame_series(
                ref.index, ref.name, ref.time_s, table, getattr(seg, "mask", None)
            )
            with self._skipped_lock:
                n_skipped = len(self.skipped_frames)
            quality = res.provenance.get("quality") or {}
            share = quality.get("measured_fraction")
            series["measured_fraction"] = math.nan if share is None else float(share)
            series["under_resolved"] = int(quality.get("under_resolved", 0))
            series["skipped_so_far"] = n_skipped
            for stage in ("read", "segment", "measure"):
                series[f"{stage}_s"] = timings.get(stage, math.nan)
            fr = FrameResult(
                index=ref.index,
                name=ref.name,
                time_s=ref.time_s,
                result=res,
                table=table,
                series=series,
                skipped=n_skipped,
                timings=timings,
                events=events,
                segmentation=seg,
            )
            if not self._put(self._q_out, fr):
                return

    # -- consumer side ---------------------------------------------------------------------

    def next_result(self) -> FrameResult:
        while True:
            if self._finished:
                raise StopIteration
            try:
                item = self._q_out.get(timeout=0.1)
            except queue.Empty:
                if not any(th.is_alive() for th in self._threads) and self._q_out.empty():
                    self.close()
                    raise RuntimeError(
                        "stream: every worker thread ended without a result or an end marker"
                    ) from None
                continue
            if isinstance(item, _Failure):
                self.close()
                raise item.exc
            if item is _END:
                self._finished = True
                self.close()
                raise StopIteration
            if isinstance(item, tuple) and item and item[0] == "events":
                self.final_events = item[1]
                continue
            self.frames_done += 1
            return item

    def close(self) -> None:
        """Stop every thread (idempotent); frames already yielded stay valid."""
        self._stop.set()
        if self._stop_source is not None:
            self._stop_source()
        for q in (self._q_read, self._q_seg, self._q_out):
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
        for th in self._threads:
            if th is not threading.current_thread():
                th.join(timeout=5.0)
        self._finished = True

    def stop_now(self) -> None:
        """Ask every thread to stop without waiting for them."""
        self._stop.set()
        if self._stop_source is not None:
            self._stop_source()


class FrameStream:
    """Iterator of :class:`FrameResult` driven by three worker threads.

    Made by :func:`antema_fast.stream.stream`; use it in a ``for`` loop or a ``with`` block
    (or call :meth:`close`). After the iteration, :attr:`skipped_frames` lists every frame that
    was not analysed and :attr:`tracker` (when tracking) holds the tracks and events.
    """

    def __init__(self, refs: Iterator[FrameRef], **kwargs: Any) -> None:
        self._w = _Workers(refs, **kwargs)

    @property
    def tracker(self) -> Any | None:
        """The :class:`Tracker` (None without tracking)."""
        return self._w.tracker

    @property
    def skipped_frames(self) -> list[SkippedFrame]:
        """Frames not analysed so far, with the reason."""
        with self._w._skipped_lock:
            return list(self._w.skipped_frames)

    @property
    def frames_done(self) -> int:
        """Frames yielded so far."""
        return self._w.frames_done

    @property
    def settings(self) -> Any:
        """The analysis settings."""
        return self._w._settings

    @property
    def segmenter_info(self) -> dict[str, Any] | None:
        """``Segmenter.info()`` of the segmenter in use, when it has one."""
        return self._w._segmenter_info

    @property
    def finished(self) -> bool:
        """True once the source is exhausted or the stream is closed."""
        return self._w._finished

    def __iter__(self) -> FrameStream:
        return self

    def __next__(self) -> FrameResult:
        return self._w.next_result()

    def close(self) -> None:
        """Stop every thread (idempotent); frames already yielded stay valid."""
        self._w.close()

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        w = getattr(self, "_w", None)
        if w is not None:
            w.stop_now()
