"""End to end: one micrograph (or several of one specimen) in, tables, summary and provenance out.

Data flows one way: read → segment → separate and measure → summarise. :func:`analyze` runs every
stage; :func:`finish` runs the stages after segmentation, so that streams and Dask workers can
reuse them on an already segmented frame without re-implementing anything.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._settings import Settings

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    from .io import Micrograph
    from .segment import Segmentation, Segmenter

log = logging.getLogger("antema_fast.pipeline")

__all__ = [
    "SUMMARY_QUANTITIES",
    "AnalysisResult",
    "SampleResult",
    "analyze",
    "analyze_sample",
    "finish",
    "pool",
    "quality",
    "summarize",
]

#: Quantities summarised per image and per sample: column -> (label, unit).
SUMMARY_QUANTITIES: dict[str, tuple[str, str]] = {
    "area_nm2": ("area", "nm²"),
    "equivalent_diameter_nm": ("equivalent diameter", "nm"),
    "feret_min_nm": ("min Feret diameter", "nm"),
    "feret_max_nm": ("max Feret diameter", "nm"),
    "aspect_ratio": ("aspect ratio", "–"),
    "circularity": ("circularity", "–"),
}

#: Columns of the summary table, in order.
SUMMARY_COLUMNS = (
    "quantity",
    "unit",
    "count",
    "mean",
    "sd",
    "median",
    "ci95_low",
    "ci95_high",
)


@dataclass(frozen=True)
class AnalysisResult:
    """Everything measured on one micrograph.

    Attributes
    ----------
    name : str
        Name of the image (file stem, or the name given to an array); also the ``image`` column.
    micrograph : Micrograph
        The image that was analysed, with its pixel size and where it came from.
    table : pandas.DataFrame
        One row per particle: an ``image`` column, then the SPEC section 2 columns.
    summary : pandas.DataFrame
        One row per quantity (see :data:`SUMMARY_QUANTITIES`): count, mean, sd, median and the
        bootstrap 95 % confidence interval of the mean (``ci95_low``, ``ci95_high``).
    excluded : pandas.DataFrame
        Areas left out of the table, one row each, with a ``reason``.
    counts : dict
        Number of areas per reason (excluded reasons, and whatever separation reports).
    mask : numpy.ndarray
        The semantic (background / particle) mask from the segmentation, bool, H × W.
    particles : list of Particle
        Each particle's own mask (bounding-box origin and bitmap); separated particles may overlap.
    timings : dict
        Seconds per stage (``read``, ``segment``, ``separate_measure``, ``summarize``).
    provenance : dict
        Package version, model name and SHA-256, backend, settings, pixel size and its source,
        input path.
    """

    name: str
    micrograph: Micrograph
    table: pd.DataFrame
    summary: pd.DataFrame
    excluded: pd.DataFrame
    counts: dict[str, int]
    mask: np.ndarray
    particles: list[Any]
    timings: dict[str, float]
    provenance: dict[str, Any]

    @property
    def n_particles(self) -> int:
        """Number of measured particles (rows of :attr:`table`)."""
        return len(self.table)

    @property
    def pixel_size_nm(self) -> float:
        """Pixel size used for every length, nm per pixel."""
        return float(self.micrograph.pixel_size_nm)

    def __repr__(self) -> str:
        return (
            f"AnalysisResult(name={self.name!r}, particles={self.n_particles}, "
            f"pixel_size_nm={self.pixel_size_nm:g}, excluded={len(self.excluded)})"
        )


@dataclass(frozen=True)
class SampleResult:
    """Several images of one specimen: per-image results plus the pooled table and summary.

    Attributes
    ----------
    name : str
        Name of the sample (also the ``sample`` column of :attr:`table`).
    images : list of AnalysisResult
        One result per image, in input order.
    table : pandas.DataFrame
        The per-image tables stacked in input order (``image`` tells them apart).
    summary : pandas.DataFrame
        :func:`summarize` of the pooled table.
    counts : dict
        Excluded-area counts added over all images.
    timings : dict
        Seconds per stage added over all images.
    provenance : dict
        Provenance shared by the images (settings, model, backend) and the list of inputs.
    """

    name: str
    images: list[AnalysisResult]
    table: pd.DataFrame
    summary: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_particles(self) -> int:
        """Number of particles pooled over all images."""
        return len(self.table)

    def __repr__(self) -> str:
        return (
            f"SampleResult(name={self.name!r}, images={len(self.images)}, "
            f"particles={self.n_particles})"
        )


# --------------------------------------------------------------------------------------------
# summary statistics


def _bootstrap_ci(
    values: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile bootstrap 95 % confidence interval of the mean of ``values`` (finite, n ≥ 1)."""
    n = values.size
    if n_resamples == 0:
        return math.nan, math.nan
    means = np.empty(n_resamples, dtype=np.float64)
    # resample in chunks so that memory stays below ~16 MB of indices whatever n is
    chunk = max(1, min(n_resamples, 2_000_000 // max(n, 1)))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def summarize(table: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """Count, mean, SD, median and bootstrap 95 % CI of the mean for each summary quantity.

    Parameters
    ----------
    table : pandas.DataFrame
        A particle table (one image or several pooled). Quantities missing from it are reported
        with count 0 and NaN statistics.
    settings : Settings, optional
        ``bootstrap_samples`` and ``seed`` are used; defaults to ``Settings()``.

    Returns
    -------
    pandas.DataFrame
        One row per quantity of :data:`SUMMARY_QUANTITIES`, columns :data:`SUMMARY_COLUMNS`.

    Notes
    -----
    NaN values (for example the circularity of a one-pixel particle) are left out of that
    quantity's statistics, so ``count`` can differ between rows. The SD is the sample standard
    deviation (divisor n − 1; NaN for one value). The confidence interval is the 2.5 and 97.5
    percentiles of the means of ``bootstrap_samples`` resamples with replacement; the random
    generator is seeded from ``settings.seed`` and the quantity's position, so that the same table
    and settings always give the same interval.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"equivalent_diameter_nm": [2.0, 4.0, 6.0]})
    >>> s = summarize(t, Settings(bootstrap_samples=200))
    >>> row = s.set_index("quantity").loc["equivalent_diameter_nm"]
    >>> int(row["count"]), float(row["mean"]), float(row["sd"]), float(row["median"])
    (3, 4.0, 2.0, 4.0)
    >>> bool(2.0 <= row["ci95_low"] <= 4.0 <= row["ci95_high"] <= 6.0)
    True
    """
    settings = settings if settings is not None else Settings()
    rows: list[dict[str, Any]] = []
    for k, (column, (_label, unit)) in enumerate(SUMMARY_QUANTITIES.items()):
        if column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
            values = values[np.isfinite(values)]
        else:
            values = np.empty(0, dtype=np.float64)
        n = int(values.size)
        row: dict[str, Any] = {"quantity": column, "unit": unit, "count": n}
        if n == 0:
            row.update(
                mean=math.nan, sd=math.nan, median=math.nan, ci95_low=math.nan, ci95_high=math.nan
            )
        else:
            rng = np.random.default_rng([settings.seed, k])
            low, high = _bootstrap_ci(values, settings.bootstrap_samples, rng)
            row.update(
                mean=float(values.mean()),
                sd=float(values.std(ddof=1)) if n > 1 else math.nan,
                median=float(np.median(values)),
                ci95_low=low,
                ci95_high=high,
            )
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    out["count"] = out["count"].astype(np.int64)
    return out


# --------------------------------------------------------------------------------------------
# inputs


def _load(source: Any, pixel_size_nm: float | None, require_calibration: bool = True) -> Micrograph:
    """Turn a path, a Micrograph or a 2-D array into a Micrograph with a usable pixel size (or,
    without ``require_calibration``, NaN where there is none)."""
    from .io import Micrograph, read

    if isinstance(source, (str, PathLike)):
        return read(
            Path(source), pixel_size_nm=pixel_size_nm, require_calibration=require_calibration
        )
    if isinstance(source, Micrograph):
        if pixel_size_nm is not None:
            _check_pixel_size(pixel_size_nm, "pixel_size_nm")
            return replace(
                source,
                pixel_size_nm=float(pixel_size_nm),
                pixel_size_x_nm=float(pixel_size_nm),
                pixel_size_y_nm=float(pixel_size_nm),
                pixel_size_source="user",
            )
        return source
    if isinstance(source, np.ndarray):
        if source.ndim != 2:
            raise ValueError(
                f"source: expected a 2-D image array, got an array of shape {source.shape}"
            )
        if pixel_size_nm is None:
            if not require_calibration:  # the scale bar will give it
                m = Micrograph.from_array(source, 1.0)
                nan = math.nan
                return replace(
                    m,
                    pixel_size_nm=nan,
                    pixel_size_x_nm=nan,
                    pixel_size_y_nm=nan,
                    pixel_size_source="none",
                )
            raise ValueError(
                "pixel_size_nm is required when source is an array: an array carries no "
                "calibration (pass pixel_size_nm=<nm per pixel>, or Settings(scale_bar_nm=...) "
                "for a burned-in scale bar)"
            )
        _check_pixel_size(pixel_size_nm, "pixel_size_nm")
        return Micrograph.from_array(source, float(pixel_size_nm))
    raise TypeError(
        f"source: expected a path, a Micrograph or a 2-D numpy array, got {type(source).__name__}"
    )


def _check_pixel_size(value: Any, what: str) -> None:
    if not (
        isinstance(value, (int, float, np.floating, np.integer))
        and math.isfinite(value)
        and value > 0
    ):
        raise ValueError(f"{what}: expected a finite number of nm per pixel > 0, got {value!r}")


def _image_name(micrograph: Micrograph) -> str:
    name = getattr(micrograph, "name", None)
    if name:
        return str(name)
    path = getattr(micrograph, "path", None)
    return Path(path).stem if path else "image"


# --------------------------------------------------------------------------------------------
# provenance


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def _jsonable(value: Any) -> Any:
    """Plain JSON types for a provenance value (NaN becomes None)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, PathLike):
        return str(value)
    return str(value)


def _provenance(
    micrograph: Micrograph,
    segmentation: Segmentation,
    settings: Settings,
    segmenter_info: Mapping[str, Any] | None,
) -> dict[str, Any]:
    from . import __version__

    path = getattr(micrograph, "path", None)
    input_path = str(path) if path else None
    prov: dict[str, Any] = {
        "package": "antema_fast",
        "version": __version__,
        "input": input_path,
        "input_sha256": _file_sha256(Path(path)) if path else None,
        "frame_index": getattr(micrograph, "frame_index", None),
        "frame_count": getattr(micrograph, "frame_count", None),
        "image_shape": list(np.shape(micrograph.data)),
        "pixel_size_nm": float(micrograph.pixel_size_nm),
        "pixel_size_x_nm": getattr(micrograph, "pixel_size_x_nm", None),
        "pixel_size_y_nm": getattr(micrograph, "pixel_size_y_nm", None),
        "pixel_size_source": getattr(micrograph, "pixel_size_source", None),
        "reader_warnings": list(getattr(micrograph, "warnings", ()) or ()),
        "scale_check": (getattr(segmentation, "extra", None) or {}).get("scale_check"),
        "outliers_repaired": (getattr(segmentation, "extra", None) or {}).get("outliers_repaired"),
        "backend": getattr(segmentation, "backend", None),
        "model_name": getattr(segmentation, "model_name", None),
        "model_sha256": getattr(segmentation, "model_sha256", None),
        "segmenter": dict(segmenter_info) if segmenter_info else None,
        "settings": settings.to_dict(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return _jsonable(prov)


# --------------------------------------------------------------------------------------------
# the pipeline


def finish(
    micrograph: Micrograph,
    segmentation: Segmentation,
    settings: Settings | None = None,
    *,
    timings: Mapping[str, float] | None = None,
    segmenter_info: Mapping[str, Any] | None = None,
    overlays: Mapping[str, Any] | None = None,
) -> AnalysisResult:
    """Separate, measure and summarise an already segmented micrograph.

    Parameters
    ----------
    micrograph : Micrograph
        The image with a finite pixel size (nm per pixel).
    segmentation : Segmentation
        Its segmentation; ``mask`` must have the image's shape.
    settings : Settings, optional
        Separation, measurement and summary settings; defaults to ``Settings()``.
    timings : mapping, optional
        Seconds of the stages already run (``read``, ``segment``); the stages run here are added.
    segmenter_info : mapping, optional
        ``Segmenter.info()`` of the engine that made the segmentation, kept in the provenance.
    overlays : mapping, optional
        :func:`find_overlays` of the image, when already found (the data-bar and scale-bar
        warnings use it); found here otherwise.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    ValueError
        If the pixel size is missing (NaN) or not positive, or the mask's shape differs from the
        image's.
    """
    from .separate import postprocess

    settings = settings if settings is not None else Settings()
    name = _image_name(micrograph)
    s = float(micrograph.pixel_size_nm)
    if not (math.isfinite(s) and s > 0):
        where = getattr(micrograph, "path", None) or name
        raise ValueError(
            f"{where}: no usable pixel size (got {s!r} nm/px); the file has no calibration — "
            "give one with pixel_size_nm=… (command line: --pixel-size NM)"
        )
    mask = np.asarray(segmentation.mask)
    if mask.shape != np.shape(micrograph.data):
        raise ValueError(
            f"{name}: segmentation mask shape {mask.shape} differs from the image shape "
            f"{np.shape(micrograph.data)}"
        )
    times: dict[str, float] = {k: float(v) for k, v in (timings or {}).items()}
    if "segment" not in times and getattr(segmentation, "seconds", None) is not None:
        times["segment"] = float(segmentation.seconds)

    if overlays is None:
        overlays = micrograph_overlays(micrograph)
    # the coloured marks and non-finite pixels the reader took out are left out whoever calls
    # (image_settings has added them already where analyze or stream call)
    settings = _with_regions(settings, _reader_regions(overlays))
    ignored = settings.ignored_mask(mask.shape)
    if ignored is not None:  # nothing there is specimen (Settings.ignore_regions)
        mask = mask.astype(bool) & ~ignored
    t0 = time.perf_counter()
    pp = postprocess(mask.astype(bool, copy=False), s, settings, image=micrograph.data)
    table = pp.table.copy()
    table.insert(0, "image", name)
    times["separate_measure"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    summary = summarize(table, settings)
    times["summarize"] = time.perf_counter() - t0

    excluded = pp.excluded.copy() if pp.excluded is not None else pd.DataFrame({"reason": []})
    if "image" not in excluded.columns:
        excluded.insert(0, "image", name)
    counts = {str(k): int(v) for k, v in dict(pp.counts).items()}
    provenance = _provenance(micrograph, segmentation, settings, segmenter_info)
    kept = mask
    if pp.low_contrast:  # noise by Settings.min_contrast_z: not particle area left unmeasured
        kept = mask.astype(bool, copy=True)
        for p in pp.low_contrast:
            h, w = p.bitmap.shape
            kept[p.row0 : p.row0 + h, p.col0 : p.col0 + w] &= ~p.bitmap
    provenance["quality"] = quality(kept, pp.particles, table, counts, settings, s)
    for key in READER_REGIONS:
        provenance["quality"][key] = [list(r) for r in overlays.get(key, ())]
    _check_data_bar(provenance["quality"], overlays["data_bar"], ignored)
    _check_scale_bar(provenance["quality"], overlays["scale_bar"], mask.shape[0], ignored)
    return AnalysisResult(
        name=name,
        micrograph=micrograph,
        table=table,
        summary=summary,
        excluded=excluded,
        counts=counts,
        mask=mask.astype(bool, copy=False),
        particles=list(pp.particles),
        timings=times,
        provenance=provenance,
    )


def _make_segmenter(settings: Settings) -> Segmenter:
    from .segment import Segmenter

    return Segmenter(settings)


def _segmenter_info(segmenter: Any) -> dict[str, Any] | None:
    info = getattr(segmenter, "info", None)
    if callable(info):
        try:
            return dict(info())
        except Exception:  # provenance must never break an analysis
            return None
    return None


#: :func:`repair_outliers`: a pixel is a detector outlier when it differs from the median of
#: its 3 × 3 neighbourhood by more than this many robust standard deviations of that
#: difference, and lies beyond the image's 0.1-99.9 percentile range by more than
#: ``OUTLIER_RANGE`` times that range.
OUTLIER_SIGMAS = 10.0
OUTLIER_RANGE = 0.5


def repair_outliers(image: Any) -> tuple[np.ndarray, int]:
    """Detector defects repaired: dead or hot columns and rows (:func:`_repair_lines`), then
    hot and dead pixels, cosmic-ray and X-ray hits (:func:`_repair_pixels`); the image itself
    (unchanged, not copied) when there are none. Returns the image and how many pixels were
    replaced.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.poisson(100.0, (64, 64)).astype(np.float32)
    >>> img[10, 20] = 60000.0  # a hot pixel
    >>> img[:, 40] = 0.0  # a dead column
    >>> fixed, n = repair_outliers(img)
    >>> n, bool(fixed[10, 20] < 200), bool(fixed[:, 40].min() > 50)
    (65, True, True)
    >>> repair_outliers(fixed)[1]
    0
    """
    data = np.asarray(image)
    if data.ndim != 2 or min(data.shape) < 3 or not np.issubdtype(data.dtype, np.number):
        return data, 0
    if not np.isfinite(data).all():
        return data, 0  # non-finite regions are the reader's (``non_finite_regions``)
    step = max(1, int(np.sqrt(data.size / 65_536)))  # about 65 000 samples set the ranges
    p = np.percentile(data[::step, ::step], [0.1, 5.0, 95.0, 99.9])
    out, n_lines = _repair_lines(data, float(p[1]), float(p[2]))
    out, n_pixels = _repair_pixels(out, float(p[0]), float(p[3]))
    return out, n_lines + n_pixels


def _robust_sigma(values: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _cast_like(values: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """Repaired float values in the image's dtype (rounded and clipped for integers)."""
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def _repair_lines(data: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, int]:
    """Whole columns and rows that a detector got wrong (dead, hot, or offset), replaced by the
    mean of the two lines beside them. A line is such a defect when its median lies beyond the
    image's 5-95 percentile range (``lo``, ``hi``; 5-95 so that a few bad lines of a small image
    do not set it themselves) by more than :data:`OUTLIER_RANGE` of it and stands out from
    the medians of both neighbours, in the same direction, by more than
    :data:`OUTLIER_SIGMAS` robust standard deviations of that difference along the image, while
    the two neighbours agree with each other (within a quarter of the difference): a straight
    edge of the specimen along a column changes the median once, from one line to the next,
    and is not a defect. Lines on the image's edge are left as they are. Returns the image and
    how many pixels were replaced."""
    h, w = data.shape
    if not hi > lo:
        return data, 0
    x: np.ndarray = data  # becomes a float32 copy at the first repair
    touched: np.ndarray | None = None
    for axis, length in ((1, w), (0, h)):  # columns, then rows of the image with them repaired
        if length < 5:
            continue
        other = h if axis == 1 else w
        # about 128 samples per line: enough for a median that a dead line sets alone
        take = slice(None, None, max(1, other // 128))
        lines = x[take, :] if axis == 1 else x[:, take].T
        prof = np.median(lines, axis=0).astype(np.float64)
        a, c, b = prof[:-2], prof[1:-1], prof[2:]
        d = c - 0.5 * (a + b)
        sigma = _robust_sigma(d)
        beyond = (c > hi + OUTLIER_RANGE * (hi - lo)) | (c < lo - OUTLIER_RANGE * (hi - lo))
        bad = (
            beyond
            & (np.abs(d) > OUTLIER_SIGMAS * sigma)
            & (np.abs(a - b) < 0.25 * np.abs(d))
            & (np.sign(c - a) == np.sign(c - b))
        )
        ks = np.flatnonzero(bad) + 1
        if ks.size == 0:
            continue
        if touched is None:
            x = data.astype(np.float32)
            touched = np.zeros(x.shape, bool)
        for k in ks:
            if axis == 1:
                x[:, k] = 0.5 * (x[:, k - 1] + x[:, k + 1])
                touched[:, k] = True
            else:
                x[k, :] = 0.5 * (x[k - 1, :] + x[k + 1, :])
                touched[k, :] = True
    if touched is None:
        return data, 0
    return _cast_like(x, data.dtype), int(np.count_nonzero(touched))


def _repair_pixels(data: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, int]:
    """Hot and dead pixels, cosmic-ray and X-ray hits replaced by the median of their 3 × 3
    neighbourhood.

    A pixel is replaced only when it is far outside what the specimen shows (beyond the
    0.1-99.9 percentile range, ``lo`` to ``hi``, by more than :data:`OUTLIER_RANGE` of it),
    isolated (more than :data:`OUTLIER_SIGMAS` robust standard deviations from its
    neighbourhood's median, the deviation's spread measured over the whole image) and alone
    or in a pair (at most one of its 8 neighbours is that far out). Single pixels and
    two-pixel streaks that bright or dark are defects of the detector or hits, not particles,
    but after the preprocessing's blur they look like small particles to the network (bright
    ones in HAADF). Three or more such pixels together are left alone, whatever they are: the
    smallest particle is never repaired away. Returns the image and how many pixels were
    replaced."""
    import cv2

    spread = hi - lo
    if not spread > 0:
        return data, 0
    far = (data > hi + OUTLIER_RANGE * spread) | (data < lo - OUTLIER_RANGE * spread)
    if not far.any():
        return data, 0
    rows, cols = np.nonzero(far)
    if rows.size > 0.001 * data.size:
        return data, 0  # more than the percentiles allow: not isolated defects
    x = data.astype(np.float32)
    # each candidate's 3 x 3 neighbourhood (edges repeated): its median and how many of its
    # neighbours are far out too (the edge repeats the pixel itself, never a neighbour)
    h, w = x.shape
    dr, dc = (a.ravel() - 1 for a in np.mgrid[0:3, 0:3])
    rr = np.clip(rows[:, None] + dr, 0, h - 1)
    cc = np.clip(cols[:, None] + dc, 0, w - 1)
    med = np.median(x[rr, cc], axis=1)
    inside = ((rows[:, None] + dr) == rr) & ((cols[:, None] + dc) == cc)
    others = (far[rr, cc] & inside).sum(axis=1) - 1
    # the spread of (pixel - its 3 x 3 median) over the image, from a central window
    wy, wx = min(h, 512), min(w, 512)
    win = np.ascontiguousarray(x[(h - wy) // 2 : (h + wy) // 2, (w - wx) // 2 : (w + wx) // 2])
    dev = (win - cv2.medianBlur(win, 3))[1:-1, 1:-1]
    sigma = _robust_sigma(dev)
    if not sigma > 0:
        sigma = float(np.std(dev)) or spread
    # at most one other far pixel among the 8 neighbours: single pixels and two-pixel streaks,
    # never a cluster of three or more (the smallest particle)
    bad = (others <= 1) & (np.abs(x[rows, cols] - med) > OUTLIER_SIGMAS * sigma)
    n = int(np.count_nonzero(bad))
    if n == 0:
        return data, 0
    out = data.copy()
    out[rows[bad], cols[bad]] = _cast_like(med[bad], data.dtype)
    return out, n


def segmentation_input(
    image: Any, settings: Settings, where: Any = None, report: dict[str, Any] | None = None
) -> np.ndarray:
    """The image as the segmentation sees it: with ``settings.ignore_regions`` (a burned-in
    scale bar, a data bar) filled with the median of the other pixels, so that their extreme
    values neither set the contrast scaling nor look like particles, and detector outliers
    (hot pixels, cosmic-ray hits) repaired (:func:`repair_outliers`); the image itself when
    there is nothing to do. ``report``, when given, gets ``outliers_repaired`` (a count).

    Raises
    ------
    ValueError
        If a region does not fit the image (the message starts with ``where``, the file).

    Examples
    --------
    >>> img = np.arange(12.0).reshape(3, 4)
    >>> segmentation_input(img, Settings(ignore_regions=((0, -1, 0, 0),)))
    array([[0. , 1. , 2. , 3. ],
           [4. , 5. , 6. , 7. ],
           [3.5, 3.5, 3.5, 3.5]])
    """
    data = np.asarray(image)
    try:
        ignored = settings.ignored_mask(data.shape)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}" if where is not None else str(exc)) from None
    out = data
    if ignored is not None:
        out = data.copy()
        out[ignored] = np.median(data[~ignored]).astype(data.dtype)
    out, n = repair_outliers(out)
    if report is not None:
        report["outliers_repaired"] = n
    return out


#: What a reader takes out of a picture and the analysis leaves out, as ignored regions
#: (``Micrograph.metadata`` keys): coloured marks on a grey micrograph
#: (:func:`antema_fast.io._micrograph.colour_marks`) and non-finite pixels
#: (:func:`antema_fast.io._micrograph.non_finite_regions`).
READER_REGIONS = ("colour_marks", "non_finite_regions")


def _reader_regions(overlays: Mapping[str, Any] | None) -> list[tuple[int, int, int, int]]:
    """The rectangles of :data:`READER_REGIONS` in ``overlays``."""
    return [r for key in READER_REGIONS for r in (overlays or {}).get(key, ())]


def find_overlays(image: Any) -> dict[str, Any]:
    """What is drawn over ``image`` rather than imaged: its data bar
    (:func:`antema_fast._databar.find_data_bar`) and burned-in scale bar
    (:func:`antema_fast._scalebar.find_scale_bar`), each None where there is none, and
    ``colour_marks`` and ``non_finite_regions`` (none in an array: :func:`micrograph_overlays`
    adds those its reader took out). Found once per image, for :func:`image_settings` and the
    warnings of :func:`finish`."""
    from ._databar import find_data_bar
    from ._scalebar import find_scale_bar

    return {
        "data_bar": find_data_bar(image),
        "scale_bar": find_scale_bar(image),
        **{key: () for key in READER_REGIONS},
    }


def micrograph_overlays(micrograph: Any) -> dict[str, Any]:
    """:func:`find_overlays` of a :class:`Micrograph`, with the rectangles of the coloured marks
    and non-finite pixels its reader took out of the picture (``metadata["colour_marks"]``,
    ``metadata["non_finite_regions"]``) and, where the grey picture has no scale bar, the
    coloured one among the marks."""
    metadata = getattr(micrograph, "metadata", {})
    found = find_overlays(micrograph.data)
    for key in READER_REGIONS:
        found[key] = tuple(tuple(int(v) for v in r) for r in metadata.get(key, ()))
    if found["scale_bar"] is None and metadata.get("colour_scale_bar") is not None:
        found["scale_bar"] = metadata["colour_scale_bar"]
    return found


def image_settings(
    image: Any, settings: Settings, overlays: Mapping[str, Any] | None = None
) -> Settings:
    """``settings`` for one image: the coloured marks and non-finite pixels the reader took
    out of it (in ``overlays``, :func:`find_overlays`) and, with ``ignore_data_bar`` and
    ``ignore_scale_bar``, the data bar and the burned-in scale bar found in it (if any) added
    to ``ignore_regions``; otherwise ``settings`` itself."""
    wanted = [k for k in ("data_bar", "scale_bar") if getattr(settings, f"ignore_{k}")]
    if settings.scale_bar_nm is not None and "scale_bar" not in wanted:
        wanted.append("scale_bar")  # a bar the caller says is one is not specimen
    regions = _reader_regions(overlays)
    if wanted:
        found = overlays if overlays is not None else find_overlays(image)
        regions += [found[k]["region"] for k in wanted if found[k] is not None]
    return _with_regions(settings, regions)


#: ``analyze`` with ``Settings.scale_bar_nm`` warns when the pixel size the burned-in scale bar
#: gives and the calibration differ by more than this share (a bar's ends are found to ±1 px).
SCALE_BAR_TOLERANCE = 0.02


def calibrate_by_scale_bar(
    micrograph: Micrograph, bar: Mapping[str, Any] | None, scale_bar_nm: float, where: Any
) -> tuple[Micrograph, dict[str, Any]]:
    """The pixel size a burned-in scale bar gives (``scale_bar_nm`` over its length in px):
    ``micrograph`` with it where it has none, and the record ``analyze`` keeps in
    ``provenance.quality.scale_bar_calibration`` (with a ``warning`` where it disagrees with the
    calibration by more than :data:`SCALE_BAR_TOLERANCE`).

    ``bar`` is :func:`antema_fast._scalebar.find_scale_bar` of the image. The bar's length is
    exact to about ±1 px, so the pixel size to about ±1/length (``uncertainty``).

    Raises
    ------
    ValueError
        If the micrograph has no pixel size and no bar was found.
    """
    calibrated = math.isfinite(float(micrograph.pixel_size_nm))
    rec: dict[str, Any] = {"scale_bar_nm": float(scale_bar_nm), "found": bar is not None}
    if bar is None:
        if not calibrated:
            raise ValueError(
                f"{where}: no pixel size: the file has no calibration, and no burned-in scale "
                f"bar was found to give it from scale_bar_nm={scale_bar_nm:g} (a solid "
                "horizontal or vertical bar at the image's darkest or brightest value, away from "
                "the border, at least 25 px long); give the pixel size with pixel_size_nm=… "
                "(command line: --pixel-size NM)"
            )
        return micrograph, rec
    n = int(bar["length_px"])
    px = float(scale_bar_nm) / n
    rec.update(length_px=n, pixel_size_nm=px, uncertainty=1.0 / n, used=not calibrated)
    if not calibrated:
        source = f"scale bar ({scale_bar_nm:g} nm = {n} px)"
        micrograph = replace(
            micrograph,
            pixel_size_nm=px,
            pixel_size_x_nm=px,
            pixel_size_y_nm=px,
            pixel_size_source=source,
        )
        return micrograph, rec
    own = float(micrograph.pixel_size_nm)
    diff = px / own - 1.0
    rec["difference"] = diff
    if abs(diff) > max(SCALE_BAR_TOLERANCE, 1.5 / n):
        rec["warning"] = (
            f"the burned-in scale bar ({n} px for {scale_bar_nm:g} nm: {px:.4g} nm/px) and the "
            f"pixel size used ({own:.4g} nm/px, {micrograph.pixel_size_source}) differ by "
            f"{diff:+.1%}: one of them is wrong; the table uses {own:.4g} nm/px (--pixel-size "
            f"{px:.4g} would use the bar's)"
        )
    return micrograph, rec


def _with_regions(settings: Settings, regions: Iterable[Sequence[int]]) -> Settings:
    """``settings`` with ``regions`` added to ``ignore_regions`` (those not there yet)."""
    new = [tuple(int(v) for v in r) for r in regions]
    new = [r for r in dict.fromkeys(new) if r not in settings.ignore_regions]
    if not new:
        return settings
    return settings.replace(ignore_regions=(*settings.ignore_regions, *new))


def analyze(
    source: Any,
    *,
    pixel_size_nm: float | None = None,
    settings: Settings | None = None,
    segmenter: Segmenter | None = None,
) -> AnalysisResult:
    """Measure every particle of one micrograph.

    Parameters
    ----------
    source : path, Micrograph or numpy.ndarray
        A microscope file (DM3/DM4, TIFF, EMD, SER, MRC …), an already read :class:`Micrograph`,
        or a 2-D image array.
    pixel_size_nm : float, optional
        nm per pixel. Required for an array; for a file or a Micrograph it overrides the
        calibration (recorded as source ``"user"``).
    settings : Settings, optional
        Every analysis parameter; defaults to ``Settings()``.
    segmenter : Segmenter, optional
        A loaded segmentation engine to reuse across calls (loading a model takes time). By default
        one is made from ``settings`` (``backend``, ``model``, ``threads``).

    Returns
    -------
    AnalysisResult
        Particle table, summary, excluded areas, masks, time per stage and provenance.

    Raises
    ------
    ValueError
        If an array comes without ``pixel_size_nm``, or the file has no calibration and none is
        given.

    Examples
    --------
    >>> import numpy as np
    >>> import antema_fast as af
    >>> img = np.full((128, 128), 200.0)
    >>> yy, xx = np.mgrid[:128, :128]
    >>> img[(yy - 40) ** 2 + (xx - 40) ** 2 < 100] = 30.0
    >>> img[(yy - 80) ** 2 + (xx - 90) ** 2 < 150] = 30.0
    >>> res = af.analyze(img, pixel_size_nm=0.2, settings=af.Settings(backend="threshold"))
    >>> res.n_particles
    2
    """
    settings = settings if settings is not None else Settings()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    micrograph = _load(source, pixel_size_nm, require_calibration=settings.scale_bar_nm is None)
    timings["read"] = time.perf_counter() - t0
    where = getattr(micrograph, "path", None) or _image_name(micrograph)
    overlays = micrograph_overlays(micrograph)
    by_bar = None
    if settings.scale_bar_nm is not None:
        micrograph, by_bar = calibrate_by_scale_bar(
            micrograph, overlays["scale_bar"], settings.scale_bar_nm, where
        )

    s = float(micrograph.pixel_size_nm)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(
            f"{where}: no usable pixel size (got {s!r} nm/px); the file has no calibration — "
            "give one with pixel_size_nm=… (command line: --pixel-size NM)"
        )

    given = settings
    settings = image_settings(micrograph.data, settings, overlays)
    prepared: dict[str, Any] = {}
    image = segmentation_input(micrograph.data, settings, where, prepared)
    t0 = time.perf_counter()
    if segmenter is None:
        segmenter = _make_segmenter(settings)
        timings["load_model"] = time.perf_counter() - t0
        t0 = time.perf_counter()
    segmentation = segmenter.segment(image, pixel_size_nm=s)
    if isinstance(getattr(segmentation, "extra", None), dict):
        segmentation.extra.update(prepared)
    timings["segment"] = time.perf_counter() - t0
    if settings.check_scale:
        segmentation = check_and_merge_scale(
            segmenter, image, segmentation, settings, where, timings, pixel_size_nm=s
        )
    result = finish(
        micrograph,
        segmentation,
        settings,
        timings=timings,
        segmenter_info=_segmenter_info(segmenter),
        overlays=overlays,
    )
    _record_given_settings(result, given, settings)
    if by_bar is not None:
        result.provenance["quality"]["scale_bar_calibration"] = by_bar
        if by_bar.get("warning"):
            result.provenance["quality"]["warnings"].append(by_bar["warning"])
    for message in result.provenance["quality"]["warnings"]:
        warnings.warn(f"{where}: {message}", UserWarning, stacklevel=2)
    return result


#: ``analyze`` warns when at least this share of the measured particles (and 3 or more) are
#: narrower than :data:`antema_fast.separate.UNDER_RESOLVED_PX`.
UNDER_RESOLVED_WARN_FRACTION = 0.25

#: The grain of an amorphous carbon support film in phase contrast (nm): "particles" this small
#: in a fine-sampled image may be its texture (:func:`quality`).
SUPPORT_GRAIN_NM = 1.0


def quality(
    mask: np.ndarray,
    particles: Sequence[Any],
    table: pd.DataFrame,
    counts: Mapping[str, int],
    settings: Settings,
    pixel_size_nm: float,
) -> dict[str, Any]:
    """Two checks of whether a particle table describes its image, with the warnings they give.

    * How much of the segmented particle area, border effects aside, lies in measured particles
      (:func:`antema_fast.separate.measured_share`); below ``settings.min_measured_fraction``
      the table misses much of what was segmented (agglomerates UECS could not split).
    * How many measured particles are narrower than ``separate.UNDER_RESOLVED_PX``: a size from so
      few pixels is off by a third or more, and in noisy images such "particles" are mostly
      noise; a warning when they are :data:`UNDER_RESOLVED_WARN_FRACTION` of the table or more.
    * How many, resolved (3 px or more) but under :data:`SUPPORT_GRAIN_NM` across, may be the
      grain of the support film, which the network takes for particles in sparse fields sampled
      at 0.02–0.3 nm/px (``support_grain``): a warning when 3 or more are under both 1 nm and
      half the median diameter and make 5 % of the table (specks beside a population of
      larger particles), or when 40 % of the table is under 1 nm (a field of specks). Only
      where 1 nm is 3 px or more; below that the previous check speaks.

    Returns the ``measured_share`` fields, ``under_resolved`` and ``support_grain`` (those
    counts), ``particles`` and ``warnings`` (a list of sentences; ``analyze`` issues each as a
    ``UserWarning``). The result keeps it as ``provenance["quality"]``.
    """
    from .separate import UNDER_RESOLVED_PX, measured_share

    q: dict[str, Any] = measured_share(
        mask,
        list(particles),
        settings.min_area_px(pixel_size_nm),
        ignored=settings.ignored_mask(np.shape(mask)),
    )
    diam_nm = np.asarray(table["equivalent_diameter_nm"], dtype=float)
    d_px = diam_nm / pixel_size_nm
    n_small = int(np.count_nonzero(d_px < UNDER_RESOLVED_PX))
    q["under_resolved"] = n_small
    q["particles"] = len(d_px)
    q["warnings"] = []
    message = _measured_share_warning(q, counts, settings, pixel_size_nm)
    if message:
        q["warnings"].append(message)
    if n_small >= 3 and n_small >= UNDER_RESOLVED_WARN_FRACTION * len(d_px):
        d_nm = math.ceil(10 * UNDER_RESOLVED_PX * pixel_size_nm) / 10
        q["warnings"].append(
            f"{n_small} of {len(d_px)} measured particles are under {UNDER_RESOLVED_PX:g} px "
            f"across ({UNDER_RESOLVED_PX * pixel_size_nm:.2g} nm at {pixel_size_nm:.3g} nm/px): "
            "too few pixels for a size (one pixel more or less is a third of it), and in noisy "
            f"images mostly noise; min_diameter_nm={d_nm:g} (--min-diameter-nm {d_nm:g}) "
            "leaves them out"
            + (
                ""
                if settings.min_contrast_z > 0
                else ", min_contrast_z=3 (--min-contrast-z 3) those that do not stand out "
                "from the noise around them"
            )
        )
    grain = _support_grain_warning(diam_nm, pixel_size_nm, UNDER_RESOLVED_PX)
    q["support_grain"] = grain[0]
    if grain[1]:
        q["warnings"].append(grain[1])
    return q


def _support_grain_warning(
    d_nm: np.ndarray, pixel_size_nm: float, resolved_px: float
) -> tuple[int, str | None]:
    """``(count, warning or None)`` of :func:`quality`'s support-grain check on the table's
    equivalent diameters ``d_nm``."""
    if pixel_size_nm * resolved_px > SUPPORT_GRAIN_NM or d_nm.size == 0:
        return 0, None
    resolved = d_nm >= resolved_px * pixel_size_nm
    sub = resolved & (d_nm < SUPPORT_GRAIN_NM)
    n_sub = int(np.count_nonzero(sub))
    tiny = sub & (d_nm < 0.5 * float(np.median(d_nm)))
    n_tiny = int(np.count_nonzero(tiny))
    if n_tiny >= 3 and n_tiny >= 0.05 * d_nm.size:
        n, what = n_tiny, f"under {SUPPORT_GRAIN_NM:g} nm and under half the median diameter"
    elif n_sub >= 3 and n_sub >= 0.4 * d_nm.size:
        n, what = n_sub, f"under {SUPPORT_GRAIN_NM:g} nm"
    else:
        return n_sub, None
    return n_sub, (
        f"{n} of {d_nm.size} measured particles are {what} across: the size of the grains of an "
        "amorphous carbon support, which segmentation can take for particles in sparse fields; "
        f"check the particle map. If yours are larger, min_diameter_nm={SUPPORT_GRAIN_NM:g} "
        f"(--min-diameter-nm {SUPPORT_GRAIN_NM:g}) leaves these out"
    )


def _record_given_settings(result: AnalysisResult, given: Settings, used: Settings) -> None:
    """Keep the settings as given in the provenance (so that ``--resume`` recognises the run)
    and, where ``ignore_data_bar`` or ``ignore_scale_bar`` added regions, the regions used in
    ``quality["ignored_regions_used"]``."""
    if used is given:
        return
    result.provenance["settings"] = _jsonable(given.to_dict())
    result.provenance["quality"]["ignored_regions_used"] = [list(r) for r in used.ignore_regions]


def _check_data_bar(
    q: dict[str, Any], bar: Mapping[str, Any] | None, ignored: np.ndarray | None
) -> None:
    """Add ``data_bar`` (:func:`antema_fast._databar.find_data_bar` of the image, or None) to
    the quality record ``q``, and a warning with the ``--ignore-region`` that leaves the bar out
    unless ``ignored`` (``Settings.ignored_mask``) already covers most of it."""
    q["data_bar"] = bar
    if bar is None:
        return
    rows = int(bar["rows"])
    band = slice(-rows, None) if bar["edge"] == "bottom" else slice(0, rows)
    if ignored is not None and ignored[band].mean() >= 0.9:
        return
    x, y, w, h = bar["region"]
    q["warnings"].append(
        f"the {bar['edge']} {rows} rows look like a data bar (a full-width strip at the image's "
        "darkest or brightest value, with text or lines in it): anything in it is segmented and "
        f"may be measured as particles. If it is one, leave it out with --ignore-region "
        f"{x},{y},{w},{h} (Settings(ignore_regions=(({x}, {y}, {w}, {h}),)))"
    )


def _check_scale_bar(
    q: dict[str, Any], bar: Mapping[str, Any] | None, height: int, ignored: np.ndarray | None
) -> None:
    """Add ``scale_bar`` (:func:`antema_fast._scalebar.find_scale_bar` of the image, or None) to
    the quality record ``q``, and a warning with the ``--ignore-region`` that leaves the bar and
    its label out unless ``ignored`` (``Settings.ignored_mask``) already covers the bar or the
    bar lies in the data bar ``q`` holds (whose warning covers it); ``height``: the image's."""
    q["scale_bar"] = bar
    if bar is None:
        return
    bx, by, bw, bh = bar["bar"]
    if ignored is not None and ignored[by : by + bh, bx : bx + bw].mean() >= 0.9:
        return
    data_bar = q.get("data_bar")
    if data_bar is not None:
        rows = int(data_bar["rows"])
        if (data_bar["edge"] == "bottom" and by >= height - rows) or (
            data_bar["edge"] == "top" and by + bh <= rows
        ):
            return
    x, y, w, h = bar["region"]
    colour = "brightest" if bar["value"] == "max" else "darkest"
    q["warnings"].append(
        f"a {bw} x {bh} px bar at column {bx}, row {by} looks like a burned-in scale bar (a solid "
        f"rectangle at the image's {colour} value): it and its label are segmented and may be "
        f"measured as particles. If it is one, leave it out with --ignore-region {x},{y},{w},{h} "
        f"(Settings(ignore_regions=(({x}, {y}, {w}, {h}),))) or --ignore-scale-bar; its label's "
        f"length in nm divided by {bar['length_px']} is the pixel size it gives, to check the "
        "calibration (--scale-bar-nm NM does both)"
    )


def _measured_share_warning(
    q: Mapping[str, Any], counts: Mapping[str, int], settings: Settings, pixel_size_nm: float
) -> str | None:
    """The advice ``analyze`` gives when measured particles cover too little of the mask.

    None when ``q["measured_fraction"]`` (:func:`antema_fast.separate.measured_share`) is at
    least ``settings.min_measured_fraction`` (or unknown); otherwise one sentence with the share,
    the exclusions (``counts``) that took the rest, and what to try.
    """
    frac = q.get("measured_fraction")
    if frac is None or frac >= settings.min_measured_fraction:
        return None
    lost = ", ".join(
        f"{n} {reason}"
        for reason, n in counts.items()
        if n and reason not in ("speck", "border", "ignored_region", "low_contrast")
    )
    message = (
        f"only {frac:.0%} of the segmented particle area (border effects aside) is in measured "
        f"particles; the rest was excluded ({lost or 'no exclusion listed'})"
    )
    d_px = q.get("median_particle_diameter_px")
    m_px = settings.min_marker_area(pixel_size_nm)
    marker_d = 2.0 * math.sqrt(m_px / math.pi)
    if settings.separation == "uecs" and d_px is not None and d_px < 3.0 * marker_d:
        message += (
            f". The particles are about {d_px:.0f} px wide, close to UECS's minimum marker of "
            f"{m_px} px (a disc {marker_d:.1f} px across), so it cannot split agglomerates of "
            "them: the table holds only the particles it could separate. Images at a higher "
            "magnification measure them reliably; separation='watershed' (--separation "
            "watershed) splits by distance instead (check its particle map)"
        )
    else:
        message += "; check the particle map for agglomerates that could not be separated"
    return message


def check_and_merge_scale(
    segmenter: Segmenter,
    image: np.ndarray,
    segmentation: Segmentation,
    settings: Settings,
    where: object,
    timings: dict[str, float],
    *,
    pixel_size_nm: float | None = None,
    warn: bool = True,
) -> Segmentation:
    """The scale check of ``analyze`` (and of every stream frame) on a finished segmentation.

    Runs ``segmenter.check_scale``; when it finds particles too wide for the model,
    ``settings.auto_scale`` merges them in from a pass at the suggested scale
    (``Segmenter.merge_wide``), else a ``UserWarning`` naming ``where`` gives the advice (only
    when ``warn``). The finding is kept in ``segmentation.extra["scale_check"]``; the seconds
    spent go to ``timings["scale_check"]`` and ``timings["scale_merge"]``.
    """
    t0 = time.perf_counter()
    check = segmenter.check_scale(np.asarray(image), segmentation)
    timings["scale_check"] = time.perf_counter() - t0
    if check is None:
        return segmentation
    if settings.auto_scale:
        t0 = time.perf_counter()
        segmentation = segmenter.merge_wide(
            image, segmentation, check["suggested_scale"], pixel_size_nm=pixel_size_nm
        )
        timings["scale_merge"] = time.perf_counter() - t0
        merged = segmentation.extra["merged_scale"]
        if merged["regions"]:
            message = (
                f"{check['finding']}; segmented again at scale {merged['scale']:g}, "
                f"{merged['regions']} wide region(s) merged (auto_scale)"
            )
        else:  # the pass at the reduced scale did not confirm the finding
            message = (
                f"{check['finding']}; segmented again at scale {merged['scale']:g}, which found "
                "no wide particle there: mask unchanged (auto_scale)"
            )
        check = {**check, "message": message, "merged_scale": merged}
        log.info("%s: %s", where, message)
    elif warn:
        warnings.warn(f"{where}: {check['message']}", UserWarning, stacklevel=3)
    segmentation.extra["scale_check"] = check
    return segmentation


def pool(
    results: Iterable[AnalysisResult], name: str, settings: Settings | None = None
) -> SampleResult:
    """Pool already computed per-image results into one :class:`SampleResult`.

    The pooled table is the per-image tables stacked in order, with a ``sample`` column added
    after ``image``; nothing is recomputed per particle.
    """
    settings = settings if settings is not None else Settings()
    images = list(results)
    tables = [r.table for r in images]
    if tables:
        table = pd.concat(tables, ignore_index=True)
    else:
        table = pd.DataFrame({"image": pd.Series([], dtype=object)})
    table.insert(1 if "image" in table.columns else 0, "sample", name)
    counts: dict[str, int] = {}
    timings: dict[str, float] = {}
    for r in images:
        for reason, n in r.counts.items():
            counts[reason] = counts.get(reason, 0) + int(n)
        for stage, seconds in r.timings.items():
            timings[stage] = timings.get(stage, 0.0) + float(seconds)
    first = images[0].provenance if images else {}
    provenance = _jsonable(
        {
            "sample": name,
            "version": first.get("version"),
            "backend": first.get("backend"),
            "model_name": first.get("model_name"),
            "model_sha256": first.get("model_sha256"),
            "settings": settings.to_dict(),
            "images": [
                {
                    "name": r.name,
                    "input": r.provenance.get("input"),
                    "pixel_size_nm": r.pixel_size_nm,
                    "pixel_size_source": r.provenance.get("pixel_size_source"),
                    "particles": r.n_particles,
                }
                for r in images
            ],
        }
    )
    return SampleResult(
        name=name,
        images=images,
        table=table,
        summary=summarize(table, settings),
        counts=counts,
        timings=timings,
        provenance=provenance,
    )


def analyze_sample(
    sources: Iterable[Any],
    *,
    name: str | None = None,
    pixel_size_nm: float | None = None,
    settings: Settings | None = None,
    segmenter: Segmenter | None = None,
) -> SampleResult:
    """Analyse several images of one specimen and pool their particles.

    ANTEMA's "multiple regions of one sample": every image is analysed on its own (with one
    segmentation engine, loaded once), then the particle tables are stacked and summarised
    together.

    Parameters
    ----------
    sources : iterable of path, Micrograph or numpy.ndarray
        The images, as for :func:`analyze`.
    name : str, optional
        Sample name; defaults to the first image's name.
    pixel_size_nm, settings, segmenter
        As for :func:`analyze`, shared by every image.

    Returns
    -------
    SampleResult
        Per-image results, the pooled table (``image`` and ``sample`` columns) and its summary.

    Raises
    ------
    ValueError
        If ``sources`` is empty.
    """
    settings = settings if settings is not None else Settings()
    items = list(sources)
    if not items:
        raise ValueError("sources: expected at least one image, got none")
    if any(isinstance(item, np.ndarray) for item in items):
        from .io import Micrograph

        if pixel_size_nm is None:
            raise ValueError(
                "pixel_size_nm is required when sources are arrays: an array carries no "
                "calibration (pass pixel_size_nm=<nm per pixel>)"
            )
        _check_pixel_size(pixel_size_nm, "pixel_size_nm")
        # arrays have no file name: number them so the pooled table tells them apart
        items = [
            Micrograph.from_array(item, float(pixel_size_nm), name=f"image{k}")
            if isinstance(item, np.ndarray)
            else item
            for k, item in enumerate(items, start=1)
        ]
    if segmenter is None:
        segmenter = _make_segmenter(settings)
    results = [
        analyze(item, pixel_size_nm=pixel_size_nm, settings=settings, segmenter=segmenter)
        for item in items
    ]
    return pool(results, name if name is not None else results[0].name, settings)
