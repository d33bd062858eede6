"""From a binary particle mask to the particle table: SPEC section 1, steps 4–8.

1. **Despeckle**: 8-connected areas smaller than ``ceil(π/4 · (min_diameter_nm / s)²)`` px are
   removed; background holes smaller than that are filled.
2. **Gate** (separation on): per 8-connected area, more than ``max_holes`` holes → excluded
   (``too_many_holes``); convexity > ``convexity_threshold`` → one particle as it is; convexity
   < ``min_convexity`` → excluded (``low_convexity``); otherwise → separation.
3. **Separate** with UECS (default), the watershed, or not at all (``"none"``: every area is
   measured as it is and flagged ``non_convex`` when its convexity ≤ the threshold).
4. **Clean** each particle: touching the image border → ``border`` (after separation, so the
   free half of a pair survives); smaller than the despeckle area → ``speck``; holes filled.
   With ``Settings.ignore_regions`` (a burned-in scale bar, a data bar), the mask is cleared
   there first and particles that touch those regions → ``ignored_region``, as at the border.
5. **Measure** every particle (:func:`antema_fast.measure.measure_particles`).

Steps 1–4 run in one call to the C++ core per frame with the GIL released. Nothing disappears
silently: every excluded area or piece is listed in :attr:`PostprocessResult.excluded` with its
reason, area and bounding box, and :attr:`PostprocessResult.counts` counts them per reason.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._settings import Settings
from .measure import Particle, _as_mask, _check_pixel_size, _pack, measure_particles

__all__ = [
    "EXCLUDED_COLUMNS",
    "REASONS",
    "PostprocessResult",
    "contrast_z",
    "measured_share",
    "postprocess",
]

#: Exclusion reasons of the core, in the order of its reason codes (1, 2, ...).
_CORE_REASONS: tuple[str, ...] = (
    "speck",
    "border",
    "low_convexity",
    "too_many_holes",
    "marker_too_small",
    "regrown_non_convex",
)
#: Every exclusion reason: the core's, then ``ignored_region`` (touches a region of
#: ``Settings.ignore_regions``) and ``low_contrast`` (``Settings.min_contrast_z``).
REASONS: tuple[str, ...] = (*_CORE_REASONS, "ignored_region", "low_contrast")

#: Columns of :attr:`PostprocessResult.excluded`, in order.
EXCLUDED_COLUMNS: tuple[str, ...] = (
    "reason",
    "stage",
    "area_px",
    "area_nm2",
    "bbox_row_min",
    "bbox_col_min",
    "bbox_row_max",
    "bbox_col_max",
    "area_id",
)

_STAGE = {
    "low_convexity": "gate",
    "too_many_holes": "gate",
    "marker_too_small": "separation",
    "regrown_non_convex": "separation",
    "border": "cleaning",
    "ignored_region": "cleaning",
    "low_contrast": "cleaning",
}


#: Particles narrower than this (equivalent diameter, px) have too few pixels for a size: they
#: are left out of :func:`measured_share`'s typical size, and ``analyze`` flags them.
UNDER_RESOLVED_PX = 3.0
_SPECK_AREA_PX = math.pi / 4.0 * UNDER_RESOLVED_PX**2


def _core() -> Any:
    from . import _core as core

    return core


@dataclass(frozen=True, eq=False)
class PostprocessResult:
    """Everything the mask → particle table step produced for one frame.

    Attributes
    ----------
    table : pandas.DataFrame
        The particle table (columns :data:`antema_fast.measure.COLUMNS`), one row per entry of
        :attr:`particles`, in the same order.
    particles : list of Particle
        Each particle's own mask; separated particles may overlap one another.
    excluded : pandas.DataFrame
        One row per excluded area or piece (columns :data:`EXCLUDED_COLUMNS`): ``reason`` (see
        :data:`REASONS`), ``stage`` (``despeckle``, ``gate``, ``separation`` or ``cleaning``),
        its area, inclusive bounding box, and ``area_id``, the index of the 8-connected area
        (after despeckling) it came from (−1 for specks removed by the despeckling).
    counts : dict of str to int
        Number of exclusions per reason (every reason present, 0 when none).
    settings : Settings
        The settings used.
    pixel_size_nm : float
        nm per pixel.
    image_shape : tuple of int
        (rows, cols) of the mask.
    n_areas : int
        8-connected areas after despeckling (before the gate).
    area_id : numpy.ndarray
        Per particle, the index of the area it came from (same numbering as in ``excluded``).
    low_contrast : list of Particle
        The particles excluded as ``low_contrast`` (``Settings.min_contrast_z``), in the order
        of their rows in ``excluded``.
    """

    table: pd.DataFrame
    particles: list[Particle]
    excluded: pd.DataFrame
    counts: dict[str, int]
    settings: Settings
    pixel_size_nm: float
    image_shape: tuple[int, int]
    n_areas: int
    area_id: np.ndarray
    low_contrast: list[Particle] = dataclasses.field(default_factory=list)


def _excluded_frame(d: dict[str, Any], pixel_size_nm: float) -> pd.DataFrame:
    codes = np.asarray(d["excluded_reason"], dtype=np.int64)
    if codes.size and (codes.min() < 1 or codes.max() > len(_CORE_REASONS)):
        raise RuntimeError(
            f"antema_fast._core.postprocess_frame: expected reason codes 1..{len(_CORE_REASONS)}, "
            f"got {sorted(set(codes.tolist()))}"
        )
    reasons = np.asarray(REASONS, dtype=object)[codes - 1] if codes.size else np.zeros(0, object)
    area_id = np.asarray(d["excluded_area_id"], dtype=np.int64)
    stage = [
        ("despeckle" if aid < 0 else "cleaning") if r == "speck" else _STAGE[r]
        for r, aid in zip(reasons, area_id, strict=True)
    ]
    area = np.asarray(d["excluded_area"], dtype=np.int64)
    bbox = np.asarray(d["excluded_bbox"], dtype=np.int64).reshape(-1, 4)
    cols = {
        "reason": pd.Categorical(reasons, categories=list(REASONS)),
        "stage": pd.Categorical(stage, categories=["despeckle", "gate", "separation", "cleaning"]),
        "area_px": area,
        "area_nm2": area * pixel_size_nm**2,
        "bbox_row_min": bbox[:, 0],
        "bbox_col_min": bbox[:, 1],
        "bbox_row_max": bbox[:, 2],
        "bbox_col_max": bbox[:, 3],
        "area_id": area_id,
    }
    return pd.DataFrame(cols, columns=list(EXCLUDED_COLUMNS))


def postprocess(
    mask: Any,
    pixel_size_nm: float,
    settings: Settings | None = None,
    *,
    image: Any = None,
    **overrides: Any,
) -> PostprocessResult:
    """Despeckle, gate, separate, clean and measure the particles of a binary mask.

    Parameters
    ----------
    mask : array_like of bool or int, shape (rows, cols)
        Nonzero pixels are particle (for example a segmentation's particle class).
    pixel_size_nm : float
        nm per pixel, finite and > 0.
    settings : Settings or None
        Parameters (``separation``, ``convexity_threshold``, ``min_convexity``,
        ``min_diameter_nm``, ``max_holes``, ``min_marker_area_px``, ``circularity``,
        ``min_contrast_z``); None uses :class:`~antema_fast.Settings` defaults.
    image : array_like, optional
        The micrograph (same shape as ``mask``); needed only with ``min_contrast_z`` > 0,
        whose test (:func:`contrast_z`) compares each particle's intensities with its
        surroundings after cleaning (stage ``cleaning``, reason ``low_contrast``).
    **overrides
        Fields of :class:`~antema_fast.Settings` to change for this call, for example
        ``separation="watershed"``.

    Returns
    -------
    PostprocessResult
        The particle table, each particle's mask, the exclusions with their reasons, the
        counts per reason and the settings used.

    Notes
    -----
    UECS's minimum marker area is ``max(ceil(π/4·(0.5 nm/s)²), min_marker_area_px)`` px and the
    despeckle area ``ceil(π/4·(min_diameter_nm/s)²)`` px (:meth:`Settings.min_area_px`). An
    area whose outer perimeter is 0 (a single pixel) has convexity 1. ``separated`` is True for
    every particle that came out of the separation step (even when it gave a single particle),
    and only for those.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:60, :90]
    >>> m = ((yy - 30) ** 2 + (xx - 28) ** 2 < 15**2) | ((yy - 30) ** 2 + (xx - 56) ** 2 < 15**2)
    >>> r = postprocess(m, 0.1)
    >>> len(r.particles), r.table.separated.tolist()
    (2, [True, True])
    >>> postprocess(m, 0.1, separation="none").table.non_convex.tolist()
    [True]
    """
    st = Settings() if settings is None else settings
    if not isinstance(st, Settings):
        raise TypeError(f"settings: expected antema_fast.Settings or None, got {type(st).__name__}")
    if overrides:
        st = st.replace(**overrides)
    m = _as_mask(mask)
    s = _check_pixel_size(pixel_size_nm)
    img = None
    if st.min_contrast_z > 0:
        if image is None:
            raise ValueError(
                f"min_contrast_z={st.min_contrast_z:g} compares particles with the image around "
                "them: give the image (postprocess(mask, pixel_size_nm, settings, image=...)) "
                "or set min_contrast_z=0"
            )
        img = np.asarray(image)
        if img.shape != m.shape:
            raise ValueError(
                f"image shape {img.shape} differs from the mask's {m.shape} (min_contrast_z)"
            )
    ignored = st.ignored_mask(m.shape)
    if ignored is not None:
        m = m & ~ignored
    d = _core().postprocess_frame(
        m,
        st.separation,
        float(st.convexity_threshold),
        float(st.min_convexity),
        int(st.max_holes),
        st.min_area_px(s),
        st.min_marker_area(s),
    )
    bits = d["buffer"].view(np.bool_)
    offsets, shapes, origins = d["offsets"], d["shapes"], d["origins"]
    separated = d["separated"].astype(bool)
    particles = [
        Particle(
            int(origins[i, 0]),
            int(origins[i, 1]),
            bits[offsets[i] : offsets[i + 1]].reshape(int(shapes[i, 0]), int(shapes[i, 1])),
            bool(separated[i]),
        )
        for i in range(len(shapes))
    ]
    area_id = np.asarray(d["area_id"], dtype=np.int64)
    excluded = _excluded_frame(d, s)
    if ignored is not None:
        particles, area_id, excluded, _ = _drop_touching(particles, area_id, excluded, ignored, s)
    low_contrast: list[Particle] = []
    if st.min_contrast_z > 0:
        z = contrast_z(img, particles, m, ignored)
        drop = [i for i, v in enumerate(z) if v < st.min_contrast_z]  # NaN: no ring, kept
        particles, area_id, excluded, low_contrast = _exclude(
            particles, area_id, excluded, drop, "low_contrast", s
        )
    image_shape = (int(m.shape[0]), int(m.shape[1]))
    table = measure_particles(
        particles,
        s,
        circularity=st.circularity,
        image_shape=image_shape,
        convexity_threshold=st.convexity_threshold,
    )
    vc = excluded["reason"].value_counts()
    counts = {r: int(vc.get(r, 0)) for r in REASONS}
    return PostprocessResult(
        table=table,
        particles=particles,
        excluded=excluded,
        counts=counts,
        settings=st,
        pixel_size_nm=s,
        image_shape=image_shape,
        n_areas=int(d["n_areas"]),
        area_id=area_id,
        low_contrast=low_contrast,
    )


def _touching(ignored: np.ndarray) -> np.ndarray:
    """The pixels in or 8-adjacent to ``ignored`` (a mask): a particle with one of them touches
    an ignored region."""
    import cv2

    return cv2.dilate(ignored.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)


def _drop_touching(
    particles: list[Particle],
    area_id: np.ndarray,
    excluded: pd.DataFrame,
    ignored: np.ndarray,
    pixel_size_nm: float,
) -> tuple[list[Particle], np.ndarray, pd.DataFrame, list[Particle]]:
    """Move the particles that touch (8-neighbourhood) an ignored pixel to the exclusions, with
    reason ``ignored_region``: like those cut by the image border, they may be cut."""
    near = _touching(ignored)
    drop = [
        i
        for i, p in enumerate(particles)
        if np.any(
            near[p.row0 : p.row0 + p.bitmap.shape[0], p.col0 : p.col0 + p.bitmap.shape[1]]
            & p.bitmap
        )
    ]
    return _exclude(particles, area_id, excluded, drop, "ignored_region", pixel_size_nm)


def _exclude(
    particles: list[Particle],
    area_id: np.ndarray,
    excluded: pd.DataFrame,
    drop: Sequence[int],
    reason: str,
    pixel_size_nm: float,
) -> tuple[list[Particle], np.ndarray, pd.DataFrame, list[Particle]]:
    """Move ``particles[i]`` for ``i`` in ``drop`` to the exclusions (stage ``cleaning``) with
    ``reason``; returns the particles kept, their ``area_id``, the exclusions and those moved."""
    if not len(drop):
        return particles, area_id, excluded, []
    rows = []
    for i in drop:
        p = particles[i]
        rr, cc = np.nonzero(p.bitmap)
        area = int(rr.size)
        rows.append(
            {
                "reason": reason,
                "stage": "cleaning",
                "area_px": area,
                "area_nm2": area * pixel_size_nm**2,
                "bbox_row_min": p.row0 + int(rr.min()),
                "bbox_col_min": p.col0 + int(cc.min()),
                "bbox_row_max": p.row0 + int(rr.max()),
                "bbox_col_max": p.col0 + int(cc.max()),
                "area_id": int(area_id[i]),
            }
        )
    extra = pd.DataFrame(rows, columns=list(EXCLUDED_COLUMNS))
    out = pd.concat(
        [excluded.astype({"reason": object, "stage": object}), extra], ignore_index=True
    )
    out["reason"] = pd.Categorical(out["reason"], categories=list(REASONS))
    out["stage"] = pd.Categorical(out["stage"], categories=list(excluded["stage"].cat.categories))
    for c in EXCLUDED_COLUMNS[2:]:
        if c != "area_nm2":
            out[c] = out[c].astype(np.int64)
    gone = set(drop)
    keep = [i for i in range(len(particles)) if i not in gone]
    return [particles[i] for i in keep], area_id[keep], out, [particles[i] for i in drop]


#: The ring around a particle that :func:`contrast_z` compares it with: the pixels more than
#: ``CONTRAST_RING_GAP_PX`` and at most ``CONTRAST_RING_GAP_PX + CONTRAST_RING_PX`` px from it.
CONTRAST_RING_GAP_PX = 1
CONTRAST_RING_PX = 5
#: Fewest ring pixels for a :func:`contrast_z` (fewer: NaN, the particle is kept).
CONTRAST_MIN_RING_PX = 8
#: Image dtypes the core reads as they are (others are converted to float64 first).
_CONTRAST_DTYPES = tuple(
    np.dtype(t) for t in ("uint8", "uint16", "int16", "int32", "uint32", "float32", "float64")
)


def contrast_z(
    image: Any,
    particles: Sequence[Particle],
    mask: Any = None,
    ignored: Any = None,
    ring_px: int = CONTRAST_RING_PX,
    gap_px: int = CONTRAST_RING_GAP_PX,
) -> np.ndarray:
    """How significant each particle's contrast is against its surroundings, in standard errors.

    For a particle with pixels P and ring R (the pixels more than ``gap_px`` and at most
    ``gap_px + ring_px`` px from it, chessboard distance, that are neither in ``mask`` (the
    segmented pixels, so no neighbour counts as background) nor in ``ignored``)::

        z = |mean(I[P]) − mean(I[R])| / (SD(I[R]) · √(1/|P| + 1/|R|))

    the two-sample statistic of the difference of the means, with the ring's spread (noise and
    support texture) as the noise of both. The gap keeps the particle's blurred edge, which a
    mask may miss by a pixel, out of the ring. A real particle of n pixels has z growing as √n; a
    noise speck the model took for a particle has z of a few at most. NaN where the ring has
    fewer than :data:`CONTRAST_MIN_RING_PX` pixels (a particle enclosed by others); ``inf``
    where the ring is flat and the means differ, 0 where they do not. Computed by the C++ core
    (``antema/contrast.hpp``, the GIL released; ``bench/bench_contrast.py``).

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        The micrograph's intensities (raw, any real dtype).
    particles : sequence of Particle
        The particles, in image coordinates.
    mask : array_like of bool, optional
        Segmented pixels left out of every ring; None: each particle's own pixels only.
    ignored : array_like of bool, optional
        Pixels that are not specimen (``Settings.ignored_mask``), left out of every ring.
    ring_px, gap_px : int
        Ring width and its distance from the particle (defaults 5 and 1).

    Returns
    -------
    numpy.ndarray of float64, one value per particle.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(100.0, 5.0, (40, 40)); img[10:20, 10:20] -= 20.0
    >>> box = Particle(10, 10, np.ones((10, 10), bool))
    >>> speck = Particle(30, 30, np.ones((2, 2), bool))
    >>> z = contrast_z(img, [box, speck])
    >>> bool(z[0] > 20), bool(z[1] < 3)
    (True, True)
    """
    img = np.asarray(image)
    if img.ndim != 2 or not np.issubdtype(img.dtype, np.number) or np.iscomplexobj(img):
        raise ValueError(f"contrast_z: expected a 2-D real image, got {img.dtype} {img.shape}")
    masks: list[np.ndarray | None] = []
    for name, a in (("mask", mask), ("ignored", ignored)):
        if a is None:
            masks.append(None)
            continue
        arr = np.asarray(a)
        if arr.shape != img.shape:
            raise ValueError(
                f"contrast_z: {name} shape {arr.shape} differs from the image's {img.shape}"
            )
        masks.append(np.ascontiguousarray(arr.astype(bool, copy=False)).view(np.uint8))
    if img.dtype not in _CONTRAST_DTYPES:
        img = img.astype(np.float64)
    img = np.ascontiguousarray(img.astype(img.dtype.newbyteorder("="), copy=False))
    crops = _pack(list(particles))
    z = _core().contrast_z(
        img, masks[0], masks[1], *crops, int(gap_px), int(ring_px), CONTRAST_MIN_RING_PX
    )
    return np.asarray(z, dtype=np.float64)


def measured_share(
    mask: Any, particles: list[Particle], min_area_px: int = 1, ignored: Any = None
) -> dict[str, Any]:
    """How much of the segmented particle area was measured, border effects aside.

    Separation and the gate may leave parts of the mask in no particle (``marker_too_small``,
    ``low_convexity``, ``regrown_non_convex`` …). They are listed in the excluded table, but the
    share of area they take says at a glance whether the table describes the image: when
    particles are only a few pixels wide, UECS's minimum marker swallows them and an agglomerate
    can lose most of its particles.

    Particles that touch the image border are dropped by definition, so the pixels counted are
    those of 8-connected areas (of at least ``min_area_px``, the despeckling's) that do not touch
    the border, and, in areas that do, those farther from the border than twice the median
    equivalent diameter of the measured particles (no border particle reaches that far unless
    it is twice the typical size). Particles under :data:`UNDER_RESOLVED_PX` across are left out
    of that median when there are others. Areas that touch ``ignored`` (the pixels of
    ``Settings.ignore_regions``, cleared from the mask) are not counted at all.

    Parameters
    ----------
    mask : array_like of bool, shape (rows, cols)
        The segmentation mask.
    particles : list of Particle
        The measured particles.
    min_area_px : int
        Areas smaller than this are specks and not counted.
    ignored : array_like of bool, shape (rows, cols), optional
        Pixels outside the analysed field (``Settings.ignored_mask``).

    Returns
    -------
    dict
        ``area_px`` (pixels counted), ``measured_px`` (of those, the pixels inside at least one
        particle), ``measured_fraction`` (their ratio, None when nothing is counted),
        ``unmeasured_areas`` (areas away from the border with no measured pixel) and
        ``median_particle_diameter_px`` (equivalent diameter of the median measured particle,
        None without any).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((20, 40), bool)
    >>> m[5:15, 5:15] = True; m[5:15, 25:35] = True
    >>> c = measured_share(m, [Particle(5, 5, np.ones((10, 10), bool))])
    >>> c["area_px"], c["measured_fraction"], c["unmeasured_areas"]
    (200, 0.5, 1)
    """
    import cv2

    m = _as_mask(mask)
    rows, cols = m.shape
    if ignored is not None:
        ignored = _as_mask(ignored)
        m = m & ~ignored
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.view(np.uint8), connectivity=8)
    x, y, w, h, area = (stats[:, i] for i in range(5))
    big = area >= max(int(min_area_px), 1)
    big[0] = False  # background
    if ignored is not None:  # areas cut by an ignored region: not counted, like border ones
        big[np.unique(labels[_touching(ignored)])] = False
    inner = big & (x > 0) & (y > 0) & (x + w < cols) & (y + h < rows)
    measured = np.zeros(m.shape, bool)
    for p in particles:
        r1, c1 = p.row0 + p.bitmap.shape[0], p.col0 + p.bitmap.shape[1]
        measured[p.row0 : r1, p.col0 : c1] |= p.bitmap
    sizes = np.array([np.count_nonzero(p.bitmap) for p in particles], dtype=float)
    if np.any(sizes >= _SPECK_AREA_PX):  # specks would drag the typical size down
        sizes = sizes[sizes >= _SPECK_AREA_PX]
    d_px = float(2.0 * np.sqrt(np.median(sizes) / np.pi)) if sizes.size else None
    # pixels counted: every pixel of the inner areas, and the deep pixels (farther than twice
    # the typical diameter from the border) of the big areas cut by the border
    total = int(area[inner].sum())
    rr, cc = np.nonzero(measured)
    lab_m = labels[rr, cc]
    counted_m = inner[lab_m]
    if d_px is not None:
        reach = int(math.ceil(2.0 * d_px))
        r0, r1, c0, c1 = reach, rows - reach, reach, cols - reach
        for k in np.flatnonzero(big & ~inner):
            a0, a1 = max(int(y[k]), r0), min(int(y[k] + h[k]), r1)
            b0, b1 = max(int(x[k]), c0), min(int(x[k] + w[k]), c1)
            if a0 < a1 and b0 < b1:
                total += int(np.count_nonzero(labels[a0:a1, b0:b1] == k))
        deep = (rr >= r0) & (rr < r1) & (cc >= c0) & (cc < c1)
        counted_m |= big[lab_m] & deep
    measured_px = int(np.count_nonzero(counted_m))
    hit = np.bincount(lab_m, minlength=n)
    return {
        "area_px": total,
        "measured_px": measured_px,
        "measured_fraction": measured_px / total if total else None,
        "unmeasured_areas": int((inner & (hit == 0)).sum()),
        "median_particle_diameter_px": d_px,
    }
