"""The segmentation entry points: :class:`Segmenter` (load once, serve many) and :func:`segment`."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Protocol

import numpy as np

from .._preprocess import Preprocessing
from .._settings import Backend, Settings, check_segment_scale
from ._models import ModelInfo, load_model_info
from ._tiling import (
    DEFAULT_OVERLAP,
    batches,
    flip_views,
    pad_to_multiple,
    plan_tiles,
    round_up,
    run_tiled,
)

log = logging.getLogger("antema_fast.segment")

# Frame sizes and batch of the TensorRT engine a Segmenter builds when none are given; the
# ``antema engine build`` command uses the same defaults, so that it pre-builds this engine.
DEFAULT_ENGINE_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (1024, 1024), (2048, 2048))
DEFAULT_ENGINE_BATCH = 4
# Resampling to the model's pixel size is skipped when the scale is this close to 1.
RESAMPLE_TOLERANCE = 0.01
# Segmenter.check_scale: coarse scale, and the full-size width from which a particle is
# beyond the shipped model's training range (about 3-85 px)
SCALE_CHECK_FACTOR = 8
SCALE_CHECK_MIN_PX = 80.0
# A wide particle counts as captured by the full-scale mask when one full-scale component
# covers this share of the wide region's core (the region eroded by the outline's
# uncertainty) and has at least ``*_AREA`` times the region's area: otherwise the full-scale
# pass missed it, broke it up or lost its rim, and the check and the merge act on it.
CAPTURED_COVER = 0.9
CAPTURED_AREA_CHECK = 0.7
CAPTURED_AREA_MERGE = 0.85
# A wide aggregate (below the convexity threshold where the coarse pass drew it) counts as
# captured only if its full-scale outline's convexity is at most this much lower than the
# coarse outline's: past the model's range the full-scale pass draws ragged outlines, which
# the separation cuts into fragments.
AGGREGATE_RAGGED_MARGIN = 0.05
# ... when it is an aggregate of wide particles: at least this share of its area lies in parts
# at least SCALE_CHECK_MIN_PX wide (an opening by a disc that wide keeps it).
WIDE_AGGREGATE_FRACTION = 0.8
# A wide region that holds at least this many compact full-scale particles (solidity ≥ 0.9,
# ≥ 6 px wide, ≥ 90 % inside it), together covering at least this fraction of it, is a field
# of small particles that a coarse pass saw as one (a slow background gradient at 1/8 scale),
# not one wide particle: the check and the merge leave it alone.
SMALL_FIELD_COUNT = 10
SMALL_FIELD_COVER = 0.05


def _compact_inside(labels: np.ndarray, stats: np.ndarray, region: np.ndarray) -> tuple[int, int]:
    """Count and area of the labelled components (``cv2.connectedComponentsWithStats``) that
    lie at least 90 % inside ``region``, are at least 6 px wide and have solidity ≥ 0.9."""
    import cv2

    n = stats.shape[0]
    inside = np.bincount(labels[region], minlength=n)
    area = stats[:, cv2.CC_STAT_AREA]
    cand = np.flatnonzero((inside >= 0.9 * area) & (area >= np.pi * 9.0))
    count = total = 0
    for j in cand[cand > 0]:
        x, y, w, h = (int(v) for v in stats[j, :4])
        comp = (labels[y : y + h, x : x + w] == j).astype(np.uint8)
        contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        hull = cv2.contourArea(cv2.convexHull(np.vstack(contours)))
        if area[j] >= 0.9 * hull:
            count += 1
            total += int(area[j])
    return count, total


def _captured(
    region: np.ndarray,
    lab_full: np.ndarray,
    stats_full: np.ndarray,
    margin_px: int,
    min_area_ratio: float,
    min_convexity: float | None,
) -> bool:
    """Whether the full-scale mask (components ``lab_full``, ``stats_full``) holds the wide
    particle ``region`` (bool, full size) whole: its largest component on the region's core
    (``region`` eroded by ``margin_px``) covers :data:`CAPTURED_COVER` of the core (holes in
    it count as not covered) and has at least ``min_area_ratio`` of the region's area; with a
    ``min_convexity``, its convexity (SPEC section 2) must also be above it, so that the
    analysis measures it as it is: a ragged full-scale outline (textured particles past the
    model's range) would be sent to separation and come back shrunk or split
    (:func:`_wide_regions` sets the bound for single particles and for aggregates)."""
    import cv2

    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return True
    pad = margin_px + 1
    y0, y1 = max(int(ys.min()) - pad, 0), int(ys.max()) + pad + 1
    x0, x1 = max(int(xs.min()) - pad, 0), int(xs.max()) + pad + 1
    reg = region[y0:y1, x0:x1].astype(np.uint8)
    core_b = reg > 0
    if margin_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1,) * 2)
        eroded = np.asarray(cv2.erode(reg, kernel)) > 0
        if eroded.any():
            core_b = eroded
    on_core = lab_full[y0:y1, x0:x1][core_b]  # holes count as not covered
    counts = np.bincount(on_core)
    counts[0] = 0
    j = int(counts.argmax())
    if counts[j] < CAPTURED_COVER * on_core.size:
        return False
    # the component whole (it may reach beyond the region)
    x, y, w, h = (int(v) for v in stats_full[j, :4])
    comp = lab_full[y : y + h, x : x + w] == j
    if np.count_nonzero(comp) < min_area_ratio * np.count_nonzero(reg):
        return False
    return min_convexity is None or _convexity(comp) > min_convexity


def _convexity(mask: np.ndarray) -> float:
    """SPEC section 2 convexity of one bitmap (the C++ core's)."""
    from .. import _core

    return float(_core.convex_stats(np.ascontiguousarray(mask, dtype=np.uint8))["convexity"])


def _wide_fraction(region: np.ndarray, min_px: float) -> float:
    """Share of ``region``'s area (bool, full size) in parts at least ``min_px`` wide: what an
    opening by a disc of that diameter keeps."""
    import cv2

    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return 0.0
    crop = region[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.uint8)
    d = max(1, int(round(min_px)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d | 1, d | 1))
    padded = cv2.copyMakeBorder(crop, d, d, d, d, cv2.BORDER_CONSTANT, value=0)
    opened = cv2.morphologyEx(padded, cv2.MORPH_OPEN, disc)
    return float(np.count_nonzero(opened)) / float(ys.size)


def _region_convexity(labels: np.ndarray, stats: np.ndarray, ids: np.ndarray) -> dict[int, float]:
    """Convexity (SPEC section 2) of each component among ``ids`` (``labels``, ``stats`` of
    ``cv2.connectedComponentsWithStats``), as the pass that drew it sees it: above the
    convexity threshold one particle, below it an aggregate."""
    out = {}
    for i in ids:
        x, y, w, h = (int(v) for v in stats[int(i), :4])
        out[int(i)] = _convexity(labels[y : y + h, x : x + w] == i)
    return out


def _widths(mask: np.ndarray, labels: np.ndarray, stats: np.ndarray, min_px: float) -> np.ndarray:
    """Width of each labelled component (``cv2.connectedComponentsWithStats`` of ``mask``):
    the diameter of the largest disc inside it, ``2·max`` of the Euclidean distance transform,
    in px. Only components whose equivalent diameter reaches ``min_px`` are measured (a
    component's width never exceeds it); the others get 0. The width, not the area, says
    whether the model can see a particle whole: an aggregate of particles in the model's range
    is as large as one wide particle, but no wider than its members."""
    import cv2

    out = np.zeros(stats.shape[0] - 1, np.float64)
    cand = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= np.pi / 4.0 * min_px * min_px) + 1
    if cand.size == 0:
        return out
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    for i in cand:
        x, y, w, h = (int(v) for v in stats[i, :4])
        crop = labels[y : y + h, x : x + w] == i
        out[i - 1] = 2.0 * float(dist[y : y + h, x : x + w][crop].max())
    return out


def _wide_regions(
    labels: np.ndarray,
    widths: np.ndarray,
    min_px: float,
    lab_full: np.ndarray,
    stats_full: np.ndarray,
    margin_px: int,
    min_area_ratio: float,
    min_convexity: float,
    convexity: dict[int, float],
) -> tuple[list[int], int, int]:
    """The labels (of a full-size label image; ``widths[i - 1]`` the width of label ``i`` in
    full-size px, :func:`_widths`) at least ``min_px`` wide that the full-scale mask (its
    8-connected components ``lab_full``, ``stats_full``) did not capture (:func:`_captured`)
    and that are not a field of small particles in it; then how many wide ones were such
    fields, and how many were captured. ``convexity[i]`` is label ``i``'s convexity where it
    was drawn: above ``min_convexity`` it is one convex particle, whose full-scale outline must
    be above ``min_convexity`` too to count as captured; below, an aggregate. An aggregate of
    wide particles (:data:`WIDE_AGGREGATE_FRACTION` of it in parts at least ``min_px`` wide,
    :func:`_wide_fraction`) counts as captured only if its full-scale outline is not more ragged
    than the coarse one (convexity at least ``convexity[i] - AGGREGATE_RAGGED_MARGIN``): past
    the model's range a ragged outline is what the separation cuts into fragments. Any other
    aggregate holds particles in the model's range (small ones on a wide one, a close-packed
    layer the coarse pass sees as one), whose full-scale outlines are the better ones: no
    convexity is asked of it."""
    large = np.flatnonzero(widths >= min_px) + 1
    missed = []
    fields = captured = 0
    for i in large:
        region = labels == i
        count, total = _compact_inside(lab_full, stats_full, region)
        if count >= SMALL_FIELD_COUNT and total >= SMALL_FIELD_COVER * np.count_nonzero(region):
            fields += 1
            continue
        c = convexity[int(i)]
        if c > min_convexity:  # one convex particle
            bound: float | None = min_convexity
        elif _wide_fraction(region, min_px) >= WIDE_AGGREGATE_FRACTION:  # of wide particles
            bound = c - AGGREGATE_RAGGED_MARGIN
        else:  # holding particles in the model's range, best drawn at full scale
            bound = None
        if _captured(region, lab_full, stats_full, margin_px, min_area_ratio, bound):
            captured += 1
        else:
            missed.append(int(i))
    return missed, fields, captured


class _Engine(Protocol):
    name: str
    max_batch: int

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def info(self) -> dict[str, object]: ...


@dataclass(frozen=True, eq=False)
class Segmentation:
    """The result of segmenting one image.

    Attributes
    ----------
    mask : ndarray of bool, (H, W)
        Particle pixels (probability above the model's threshold).
    probability : ndarray of float32, (H, W)
        Particle probability in [0, 1]. For the ``threshold`` backend: the blurred intensity
        scaled to [0, 1] with particles bright (a score, not a calibrated probability).
    backend : str
        Engine that ran: ``"tensorrt"``, ``"onnxruntime-cuda"``, ``"onnxruntime-cpu"`` or
        ``"threshold"``.
    model_name, model_sha256 : str or None
        The model (None for ``threshold``).
    seconds : float
        Wall time spent on this image (its share of a batch's inference time, plus its own
        pre- and post-processing).
    extra : dict
        Details: ``pixel_size_nm``, ``resampled_shape``, ``tiles``, ``polarity`` (threshold).
    """

    mask: np.ndarray
    probability: np.ndarray
    backend: str
    model_name: str | None
    model_sha256: str | None
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.mask.shape[0]), int(self.mask.shape[1]))


def _check_image(image: np.ndarray, index: int | None = None) -> np.ndarray:
    a = np.asarray(image)
    where = "" if index is None else f" #{index}"
    if a.ndim != 2:
        raise ValueError(f"image{where}: expected a 2-D array (H, W), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"image{where}: expected a non-empty image, got shape {a.shape}")
    if not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating) or a.dtype == bool
    ):
        raise ValueError(f"image{where}: expected a real-valued array, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"image{where}: expected finite values, got NaN or infinity")
    return a


def _resize(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    h, w = shape
    shrink = h * w < x.shape[0] * x.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(x.astype(np.float32, copy=False), (w, h), interpolation=interp)


class Segmenter:
    """Loads a segmentation engine once and segments many images with it.

    Parameters
    ----------
    settings : Settings or None
        ``backend``, ``model``, ``threads``, ``tile_size`` and ``segment_scale`` are read from it.
    backend : {"auto", "onnxruntime", "tensorrt", "threshold"} or None
        Overrides ``settings.backend``. ``auto`` tries TensorRT (when it imports and a GPU is
        there), then ONNX Runtime with CUDA, then ONNX Runtime on the CPU, and logs each reason
        for falling back (see :attr:`fallbacks`).
    model : str, path or None
        Overrides ``settings.model``: a shipped model name or an ONNX path; None is the default.
    overlap : int
        Overlap of tiles in px for images larger than ``settings.tile_size``.
    engine_sizes : sequence of (int, int) or None
        Frame sizes the TensorRT engine's optimisation profile must cover
        (default :data:`DEFAULT_ENGINE_SIZES`).
    engine_batch : int
        Largest batch of the TensorRT profile.
    threshold_method : {"otsu", "adaptive"}
        Method of the ``threshold`` backend.

    Examples
    --------
    >>> seg = Segmenter(backend="threshold")
    >>> img = np.full((64, 64), 200.0); img[20:40, 20:40] = 50.0
    >>> out = seg.segment(img)
    >>> out.mask.shape, out.backend
    ((64, 64), 'threshold')
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: Backend | None = None,
        model: str | os.PathLike[str] | None = None,
        overlap: int = DEFAULT_OVERLAP,
        engine_sizes: Sequence[tuple[int, int]] | None = None,
        engine_batch: int = DEFAULT_ENGINE_BATCH,
        threshold_method: Literal["otsu", "adaptive"] = "otsu",
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        requested = backend if backend is not None else self.settings.backend
        if requested not in ("auto", "onnxruntime", "tensorrt", "threshold"):
            raise ValueError(
                "backend: expected one of ('auto', 'onnxruntime', 'tensorrt', 'threshold'), "
                f"got {requested!r}"
            )
        self.requested_backend: str = requested
        self._model_ref = model if model is not None else self.settings.model
        self.overlap = int(overlap)
        self.engine_sizes = tuple(engine_sizes) if engine_sizes else DEFAULT_ENGINE_SIZES
        self.engine_batch = int(engine_batch)
        if threshold_method not in ("otsu", "adaptive"):
            raise ValueError(
                f"threshold_method: expected 'otsu' or 'adaptive', got {threshold_method!r}"
            )
        self.threshold_method: Literal["otsu", "adaptive"] = threshold_method
        self.fallbacks: list[str] = []
        self.model: ModelInfo | None = None
        self._engine: _Engine | None = None
        self._min_hw = (1, 1)
        if requested == "threshold":
            self.backend_name = "threshold"
        else:
            self.model = load_model_info(self._model_ref)
            self._engine = self._open(requested, self.model)
            self.backend_name = self._engine.name
        log.info(
            "segmentation backend %s (requested %s)%s",
            self.backend_name,
            requested,
            f", model {self.model.name} sha256 {self.model.sha256[:12]}" if self.model else "",
        )

    # -- engine selection --------------------------------------------------------------------
    def _fallback(self, reason: str, level: int = logging.INFO) -> None:
        self.fallbacks.append(reason)
        log.log(level, "segmentation backend fallback: %s", reason)

    def _open(self, requested: str, info: ModelInfo) -> _Engine:
        from ._onnx import OnnxRuntimeBackend, cuda_provider_available

        if requested in ("auto", "tensorrt"):
            try:
                return self._open_tensorrt(info)
            except ImportError as exc:
                if requested == "tensorrt":
                    raise
                self._fallback(f"TensorRT unavailable: {exc}")
            except Exception as exc:  # no GPU, driver errors, build failures: all fall back
                if requested == "tensorrt":
                    raise
                self._fallback(f"TensorRT failed: {type(exc).__name__}: {exc}", logging.WARNING)
        threads = self.settings.threads
        if cuda_provider_available():
            try:
                return OnnxRuntimeBackend(info.path, threads, device="cuda")
            except Exception as exc:  # onnxruntime raises its own exception types
                self._fallback(f"ONNX Runtime CUDA failed: {exc}")
        else:
            self._fallback("ONNX Runtime has no CUDA provider (onnxruntime-gpu not installed)")
        return OnnxRuntimeBackend(info.path, threads, device="cpu")

    def _open_tensorrt(self, info: ModelInfo) -> _Engine:
        from ._tensorrt import TensorRTBackend, choose_profile, import_tensorrt

        import_tensorrt()
        k = float(self.settings.segment_scale)  # frames reach the engine resized by this
        sizes = tuple((max(1, round(h * k)), max(1, round(w * k))) for h, w in self.engine_sizes)
        profile = choose_profile(
            sizes, self.engine_batch, info.pad_multiple, self.settings.tile_size
        )
        engine = TensorRTBackend(info, profile)
        self._min_hw = (profile.min[2], profile.min[3])
        return engine

    # -- provenance ---------------------------------------------------------------------------
    @property
    def model_name(self) -> str | None:
        return None if self.model is None else self.model.name

    @property
    def model_sha256(self) -> str | None:
        return None if self.model is None else self.model.sha256

    def info(self) -> dict[str, Any]:
        """Provenance: backend requested and used, fallback reasons, model, engine details."""
        from .. import __version__

        return {
            "antema_fast_version": __version__,
            "backend": self.backend_name,
            "requested_backend": self.requested_backend,
            "fallbacks": list(self.fallbacks),
            "model": None if self.model is None else self.model.summary(),
            "engine": None if self._engine is None else self._engine.info(),
            "threads": self.settings.threads,
            "tile_size": self.settings.tile_size,
            "segment_scale": self.settings.segment_scale,
            "flip_views": self.settings.flip_views,
            "overlap": self.overlap,
        }

    def __repr__(self) -> str:
        return f"Segmenter(backend={self.backend_name!r}, model={self.model_name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling sends the recipe, not the session: a dask worker rebuilds the engine once.
        return (
            _rebuild,
            (
                self.settings,
                self.requested_backend,
                self._model_ref,
                self.overlap,
                self.engine_sizes,
                self.engine_batch,
                self.threshold_method,
            ),
        )

    # -- segmentation -------------------------------------------------------------------------
    def segment(
        self, image: np.ndarray, pixel_size_nm: float | None = None, *, scale: float | None = None
    ) -> Segmentation:
        """Segment one 2-D image.

        Parameters
        ----------
        image : ndarray (H, W)
            The micrograph, any real dtype.
        pixel_size_nm : float or None
            nm per pixel. When given and the model states the pixel size it was trained at, the
            image is resampled to it and the result back to (H, W). ``settings.segment_scale``
            resizes on top of that.
        scale : float or None
            Use this resize factor instead of ``settings.segment_scale`` for this call.
        """
        return self.segment_batch([image], pixel_size_nm, scale=scale)[0]

    def segment_batch(
        self,
        images: Sequence[np.ndarray],
        pixel_size_nm: float | Sequence[float | None] | None = None,
        *,
        scale: float | None = None,
    ) -> list[Segmentation]:
        """Segment several images; frames of equal size go through the engine together.

        ``pixel_size_nm`` is one value for all images or one per image; ``scale`` as for
        :meth:`segment`.
        """
        if scale is not None:
            check_segment_scale(scale, "scale")
        images = list(images)
        if isinstance(pixel_size_nm, Sequence) and not isinstance(pixel_size_nm, str):
            sizes = list(pixel_size_nm)
            if len(sizes) != len(images):
                raise ValueError(
                    f"pixel_size_nm: expected one value per image ({len(images)}), got {len(sizes)}"
                )
        else:
            sizes = [pixel_size_nm] * len(images)
        arrays = [_check_image(a, i if len(images) > 1 else None) for i, a in enumerate(images)]
        for s in sizes:
            if s is not None and not (isinstance(s, (int, float)) and np.isfinite(s) and s > 0):
                raise ValueError(f"pixel_size_nm: expected a finite number > 0 or None, got {s!r}")
        if self._engine is None:
            return [self._segment_threshold(a) for a in arrays]
        k = float(self.settings.segment_scale if scale is None else scale)
        return self._segment_model(arrays, sizes, k)

    def check_scale(
        self, image: np.ndarray, segmentation: Segmentation, factor: int = SCALE_CHECK_FACTOR
    ) -> dict[str, Any] | None:
        """Look for particles far wider than the model's training range that the segmentation
        missed: segment the image again at ``1/factor`` scale (about 1/64 of the work) and
        compare.

        Returns None when all is well (or the check does not apply: the threshold backend, a
        ``segment_scale`` other than 1, an image under ``64·factor`` px), else a dict with
        ``finding`` (what was seen), ``message`` (the finding and what to do),
        ``diameter_px`` (median width, :func:`_widths`, of the large particles found at the coarse
        scale, in full-size pixels), ``missed_fraction`` and a ``suggested_scale`` that brings
        them to about 30 px.

        A coarse particle counts as large when it is at least ``SCALE_CHECK_MIN_PX`` wide at
        full size and is not a field of small particles (``SMALL_FIELD_COUNT`` compact
        full-scale particles inside it covering ``SMALL_FIELD_COVER`` of it). The check fires
        when the full-scale mask did not capture one or more large particles: no full-scale
        component covers ``CAPTURED_COVER`` of the particle's core (the coarse region eroded
        by ``factor`` px) with at least ``CAPTURED_AREA_CHECK`` of its area and, where the
        coarse pass sees one convex particle, a convexity above
        ``settings.convexity_threshold``. That takes in particles the full-scale pass
        missed, broke into pieces, hollowed out, lost the rim of or drew with a ragged outline,
        which is what a network trained on narrower particles does to them. Width is the
        diameter of the largest disc inside a region, so an aggregate of particles in the
        model's range is not taken for a wide particle.
        ``missed_fraction`` is the share of those particles' area the full-scale mask leaves out.
        """
        import cv2

        h, w = image.shape
        if (
            self._engine is None
            or self.model is None
            or self.model.pixel_size_nm is not None  # the model's own scale applies
            or self.settings.segment_scale != 1.0
            or min(h, w) < 64 * factor
        ):
            return None
        small = _resize(np.asarray(image, np.float32), (h // factor, w // factor))
        coarse = self.segment(small).mask
        n, lab, stats, _ = cv2.connectedComponentsWithStats(coarse.astype(np.uint8), connectivity=8)
        if n <= 1:
            return None
        widths = factor * _widths(coarse, lab, stats, SCALE_CHECK_MIN_PX / factor)
        if not np.any(widths >= SCALE_CHECK_MIN_PX):
            return None
        t = self.settings.convexity_threshold
        up = cv2.resize(lab.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
        _, lab_full, stats_full, _ = cv2.connectedComponentsWithStats(
            segmentation.mask.astype(np.uint8), connectivity=8
        )
        missed, _, captured = _wide_regions(
            up,
            widths,
            SCALE_CHECK_MIN_PX,
            lab_full,
            stats_full,
            factor,
            CAPTURED_AREA_CHECK,
            t,
            _region_convexity(lab, stats, np.flatnonzero(widths >= SCALE_CHECK_MIN_PX) + 1),
        )
        if not missed:
            return None
        large = np.asarray(missed)
        big_full = np.isin(up, large)
        big_area = float(np.count_nonzero(big_full))
        covered = float(np.count_nonzero(big_full & segmentation.mask)) / big_area
        d = float(np.median(widths[large - 1]))
        scale = float(min(0.5, max(0.02, round(30.0 / d, 2))))
        finding = (
            f"{large.size} particle(s) about {d:.0f} px wide, {100 * big_area / (h * w):.0f} % "
            f"of the image at 1/{factor} scale, are missed, broken up or ragged in the "
            f"full-scale segmentation (it covers {100 * covered:.0f} % of them"
            + (f"; {captured} other wide one(s) it holds whole" if captured else "")
            + "): they are wider than the model's range (about 3-85 px)"
        )
        return {
            "finding": finding,
            "message": (
                f"{finding}; segment at a reduced scale, e.g. segment_scale={scale:g} "
                f"(--segment-scale {scale:g})"
            ),
            "diameter_px": d,
            "missed_fraction": 1.0 - covered,
            "suggested_scale": scale,
        }

    def merge_wide(
        self,
        image: np.ndarray,
        segmentation: Segmentation,
        scale: float,
        pixel_size_nm: float | None = None,
        min_width_px: float = SCALE_CHECK_MIN_PX,
    ) -> Segmentation:
        """Segment ``image`` again at ``scale`` (typically :meth:`check_scale`'s
        ``suggested_scale``) and take the particles that are too wide for the model from there.

        Regions at least ``min_width_px`` wide (the largest disc inside them, at full size) in the
        reduced-scale mask replace whatever the full-scale ``segmentation`` found on them or
        touching them (its fragments of those particles); everywhere else the full-scale mask
        stays, so small particles beside large ones keep their full-resolution outlines. The
        probability map is merged the same way. Without such regions the full-scale result is
        returned unchanged (with the attempt noted in ``extra["merged_scale"]``).
        """
        import cv2

        wide = self.segment(image, pixel_size_nm, scale=scale)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(
            wide.mask.astype(np.uint8), connectivity=8
        )
        widths = _widths(wide.mask, lab, stats, min_width_px)
        t = self.settings.convexity_threshold
        _, lab_full, stats_full, _ = cv2.connectedComponentsWithStats(
            segmentation.mask.astype(np.uint8), connectivity=8
        )
        r = max(1, int(np.ceil(1.0 / scale)))  # about one reduced-scale pixel
        keep, fields, captured = _wide_regions(
            lab,
            widths,
            min_width_px,
            lab_full,
            stats_full,
            r,
            CAPTURED_AREA_MERGE,
            t,
            _region_convexity(lab, stats, np.flatnonzero(widths >= min_width_px) + 1),
        )
        note = {
            "scale": float(scale),
            "regions": len(keep),
            "small_particle_fields": fields,
            "captured_at_full_scale": captured,
            "seconds": wide.seconds,
        }
        extra = {**segmentation.extra, "merged_scale": note}
        if not keep:
            return dataclasses.replace(segmentation, extra=extra)
        big = np.isin(lab, keep)
        # a margin of about one reduced-scale pixel (r): what the coarser outline cannot place
        near = (
            cv2.dilate(
                big.astype(np.uint8),
                cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)),
            )
            > 0
        )
        hit = np.unique(lab_full[near & segmentation.mask])
        replaced = near | np.isin(lab_full, hit[hit > 0])
        mask = np.where(replaced, big, segmentation.mask)
        prob = np.where(replaced, wide.probability, segmentation.probability).astype(np.float32)
        return dataclasses.replace(
            segmentation,
            mask=mask,
            probability=prob,
            seconds=segmentation.seconds + wide.seconds,
            extra=extra,
        )

    def _segment_threshold(self, image: np.ndarray) -> Segmentation:
        from ._threshold import threshold_segment

        t0 = time.perf_counter()
        mask, score, polarity = threshold_segment(
            image, method=self.threshold_method, sigma_px=Preprocessing().gaussian_sigma_px
        )
        return Segmentation(
            mask=mask,
            probability=score,
            backend="threshold",
            model_name=None,
            model_sha256=None,
            seconds=time.perf_counter() - t0,
            extra={"polarity": polarity, "method": self.threshold_method},
        )

    def _segment_model(
        self, arrays: list[np.ndarray], sizes: list[float | None], segment_scale: float
    ) -> list[Segmentation]:
        assert self.model is not None and self._engine is not None
        info, engine = self.model, self._engine
        multiple = info.pad_multiple
        n = len(arrays)
        seconds = [0.0] * n
        prepared: list[np.ndarray] = []
        work_shapes: list[tuple[int, int]] = []
        for i, (a, s) in enumerate(zip(arrays, sizes, strict=True)):
            t0 = time.perf_counter()
            x = a.astype(np.float32, copy=False)
            scale = segment_scale
            if s is not None and info.pixel_size_nm is not None:
                scale *= float(s) / info.pixel_size_nm
            if abs(scale - 1.0) > RESAMPLE_TOLERANCE:
                shape = (max(1, round(a.shape[0] * scale)), max(1, round(a.shape[1] * scale)))
                x = _resize(x, shape)
            work_shapes.append((int(x.shape[0]), int(x.shape[1])))
            x = info.preprocessing.apply(x)
            x = pad_to_multiple(x, multiple)
            mh, mw = round_up(self._min_hw[0], multiple), round_up(self._min_hw[1], multiple)
            if x.shape[0] < mh or x.shape[1] < mw:
                x = np.pad(
                    x, ((0, max(mh - x.shape[0], 0)), (0, max(mw - x.shape[1], 0))), mode="reflect"
                )
            prepared.append(np.ascontiguousarray(x, dtype=np.float32))
            seconds[i] += time.perf_counter() - t0

        probs: list[np.ndarray | None] = [None] * n
        tiles = [1] * n
        plans = [
            plan_tiles(x.shape, self.settings.tile_size, multiple, self.overlap) for x in prepared
        ]
        run = flip_views(engine.run, self.settings.flip_views)
        # Whole frames of the same padded shape run together, max_batch at a time.
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (x, plan) in enumerate(zip(prepared, plans, strict=True)):
            if plan.n_tiles == 1:
                groups.setdefault((x.shape[0], x.shape[1]), []).append(i)
        for members in groups.values():
            for sl in batches(len(members), engine.max_batch):
                idx = members[sl]
                t0 = time.perf_counter()
                out = run(np.stack([prepared[i] for i in idx])[:, None])
                dt = (time.perf_counter() - t0) / len(idx)
                for k, i in enumerate(idx):
                    probs[i] = out[k, 0]
                    seconds[i] += dt
        for i, plan in enumerate(plans):
            if plan.n_tiles > 1:
                t0 = time.perf_counter()
                probs[i] = run_tiled(prepared[i], run, plan, engine.max_batch)
                tiles[i] = plan.n_tiles
                seconds[i] += time.perf_counter() - t0

        results = []
        for i, a in enumerate(arrays):
            t0 = time.perf_counter()
            p = probs[i]
            assert p is not None
            wh, ww = work_shapes[i]
            p = p[:wh, :ww]
            if (wh, ww) != a.shape:
                p = np.clip(_resize(p, (a.shape[0], a.shape[1])), 0.0, 1.0)
            p = np.ascontiguousarray(p, dtype=np.float32)
            mask = p > info.threshold
            seconds[i] += time.perf_counter() - t0
            results.append(
                Segmentation(
                    mask=mask,
                    probability=p,
                    backend=self.backend_name,
                    model_name=info.name,
                    model_sha256=info.sha256,
                    seconds=seconds[i],
                    extra={
                        "pixel_size_nm": sizes[i],
                        "resampled_shape": (wh, ww),
                        "tiles": tiles[i],
                    },
                )
            )
        return results


def _rebuild(
    settings: Settings,
    backend: Backend,
    model: str | os.PathLike[str] | None,
    overlap: int,
    engine_sizes: tuple[tuple[int, int], ...],
    engine_batch: int,
    threshold_method: Literal["otsu", "adaptive"],
) -> Segmenter:
    return Segmenter(
        settings,
        backend=backend,
        model=model,
        overlap=overlap,
        engine_sizes=engine_sizes,
        engine_batch=engine_batch,
        threshold_method=threshold_method,
    )


@lru_cache(maxsize=4)
def _cached_segmenter(settings: Settings, backend: Backend | None, model: str | None) -> Segmenter:
    return Segmenter(settings, backend=backend, model=model)


def segment(
    image: np.ndarray,
    *,
    pixel_size_nm: float | None = None,
    backend: Backend | None = None,
    model: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
) -> Segmentation:
    """Segment one micrograph into a particle mask and probability map.

    The engine for a given (settings, backend, model) is loaded once and reused by later calls;
    for explicit control (streams, dask workers) create a :class:`Segmenter`.

    Parameters
    ----------
    image : ndarray (H, W)
        The micrograph.
    pixel_size_nm : float or None
        nm per pixel; used to resample to the model's pixel size when the model states one.
    backend : {"auto", "onnxruntime", "tensorrt", "threshold"} or None
        None: ``settings.backend`` (default ``"auto"``).
    model : str, path or None
        Shipped model name or ONNX path; None: ``settings.model`` (default model).
    settings : Settings or None
        Threads, tile size and the defaults above.

    Examples
    --------
    >>> img = np.full((64, 64), 50.0); img[20:40, 20:40] = 220.0   # HAADF: bright particle
    >>> out = segment(img, backend="threshold")
    >>> int(out.mask[30, 30]), int(out.mask[0, 0]), out.extra["polarity"]
    (1, 0, 'bright')
    """
    key = None if model is None else os.fspath(model)
    seg = _cached_segmenter(settings if settings is not None else Settings(), backend, key)
    return seg.segment(image, pixel_size_nm)
