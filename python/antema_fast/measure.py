"""Labelling, per-particle masks and the particle table (SPEC section 2).

Every number is computed by the C++ core (``antema_fast._core``) in one call per image or per
list of particles, with the GIL released. This module checks inputs, converts them once to
C-contiguous ``uint8`` and turns the core's arrays into a :class:`pandas.DataFrame`.

Conventions
-----------
* Pixel coordinates are (row, col); pixel (r, c) covers [r−½, r+½] × [c−½, c+½].
* ``centroid_x`` is the column, ``centroid_y`` the row (× pixel size for the ``_nm`` columns).
* Bounding boxes are inclusive pixel bounds.
* Angles are in degrees, counter-clockwise from the +col axis as seen with row 0 at the top,
  in [0, 180).

A particle is its own mask (:class:`Particle`: a bitmap and its offset in the image), not a
value of a label image, because separated particles may overlap one another.

Degenerate shapes have defined values
-------------------------------------
* One pixel: perimeter 0, circularity NaN, Feret max √2·s at 45°, Feret min s at 0°, convex
  area 1, convexity 1.0 (0/0 is taken as convex), solidity 1.0.
* A straight one-pixel-wide line (any direction, the 2-pixel diagonal included): its convex
  image is the line itself, so convexity = solidity = 1.0; Feret min is the caliper width of
  the pixel squares (1 px, or √2 px across a diagonal), never 0.
* A particle bitmap made of several 8-connected pieces: the perimeter is the sum of the pieces'
  outer perimeters (MATLAB's regionprops would use only its first boundary); hull, Feret and
  convex image are those of all its pixels.
* Ties (a square's two diagonals, its two widths) resolve to the smallest angle.
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ._settings import Settings

Circularity = Literal["corrected", "legacy"]
Connectivity = Literal[1, 2]

#: Columns of the particle table, in order.
COLUMNS: tuple[str, ...] = (
    "particle_id",
    "area_nm2",
    "equivalent_diameter_nm",
    "perimeter_nm",
    "circularity",
    "feret_max_nm",
    "feret_max_angle_deg",
    "feret_min_nm",
    "feret_min_angle_deg",
    "aspect_ratio",
    "convexity",
    "solidity",
    "centroid_x_nm",
    "centroid_y_nm",
    "bbox_row_min",
    "bbox_col_min",
    "bbox_row_max",
    "bbox_col_max",
    "separated",
    "non_convex",
    "area_px",
    "equivalent_diameter_px",
    "perimeter_px",
    "feret_max_px",
    "feret_min_px",
    "convex_area_px",
    "convex_perimeter_px",
    "centroid_x_px",
    "centroid_y_px",
    "holes",
    "touches_border",
)

__all__ = [
    "COLUMNS",
    "Particle",
    "clear_border",
    "fill_holes",
    "label",
    "measure",
    "measure_particles",
    "particles_from_mask",
    "regionprops_table",
    "remove_small_objects",
]


def _core() -> Any:
    from . import _core as core

    return core


# --------------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------------


def _as_mask(mask: Any, name: str = "mask") -> np.ndarray:
    """Check a 2-D boolean/integer mask and return it as C-contiguous ``uint8`` (0/1)."""
    a = np.asarray(mask)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got {a.ndim} dimensions (shape {a.shape})")
    if a.size == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D array, got shape {a.shape}")
    if a.dtype == np.bool_:
        return np.ascontiguousarray(a).view(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.dtype == np.uint8 and a.flags.c_contiguous and int(a.max()) <= 1:
            return a
        return np.ascontiguousarray(a != 0, dtype=np.uint8)
    raise TypeError(
        f"{name}: expected a boolean or integer mask (nonzero = particle), got dtype {a.dtype}; "
        "threshold a float image explicitly, for example mask = image > 0.5"
    )


def _check_pixel_size(pixel_size_nm: Any) -> float:
    if isinstance(pixel_size_nm, (bool, np.bool_)) or not isinstance(
        pixel_size_nm, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"pixel_size_nm: expected a number (nm per pixel), got {pixel_size_nm!r}")
    s = float(pixel_size_nm)
    if not (math.isfinite(s) and s > 0.0):
        raise ValueError(f"pixel_size_nm: expected a finite number > 0, got {pixel_size_nm!r}")
    return s


def _check_connectivity(connectivity: Any) -> int:
    if connectivity not in (1, 2) or isinstance(connectivity, bool):
        raise ValueError(
            f"connectivity: expected 1 (4-neighbours) or 2 (8-neighbours), got {connectivity!r}"
        )
    return 4 if connectivity == 1 else 8


def _check_circularity(circularity: Any) -> str:
    if circularity not in ("corrected", "legacy"):
        raise ValueError(f"circularity: expected 'corrected' or 'legacy', got {circularity!r}")
    return str(circularity)


# --------------------------------------------------------------------------------------------
# particles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Particle:
    """One particle: a boolean bitmap and the image position of its top-left pixel.

    Parameters
    ----------
    row0, col0 : int
        Image row and column of ``bitmap[0, 0]``.
    bitmap : numpy.ndarray
        2-D boolean mask of the particle (normally its tight bounding box), with at least one
        pixel set. Stored read-only.
    separated : bool
        True when the particle came out of the separation step.

    Notes
    -----
    Particles may overlap one another; the table is measured on each bitmap alone.

    Examples
    --------
    >>> import numpy as np
    >>> p = Particle(2, 3, np.ones((2, 4), bool))
    >>> p.bbox, p.area
    ((2, 3, 3, 6), 8)
    >>> int(p.to_mask((5, 8)).sum())
    8
    """

    row0: int
    col0: int
    bitmap: np.ndarray
    separated: bool = False

    def __post_init__(self) -> None:
        b = np.asarray(self.bitmap)
        if b.ndim != 2 or b.size == 0:
            raise ValueError(
                f"Particle.bitmap: expected a non-empty 2-D array, got shape {b.shape}"
            )
        if b.dtype != np.bool_:
            if not np.issubdtype(b.dtype, np.integer):
                raise TypeError(
                    f"Particle.bitmap: expected a boolean or integer array, got dtype {b.dtype}"
                )
            b = b != 0
        else:
            b = b.view()  # read-only view; the caller's array stays writeable
        if not b.any():
            raise ValueError(
                "Particle.bitmap: expected at least one pixel set, got an empty bitmap"
            )
        b.flags.writeable = False
        object.__setattr__(self, "bitmap", b)
        object.__setattr__(self, "row0", int(self.row0))
        object.__setattr__(self, "col0", int(self.col0))
        object.__setattr__(self, "separated", bool(self.separated))

    @classmethod
    def _trusted(
        cls, row0: int, col0: int, bitmap: np.ndarray, separated: bool = False
    ) -> Particle:
        """Build without checks, for bitmaps made by the core (2-D, bool, read-only, non-empty)."""
        p = object.__new__(cls)
        object.__setattr__(p, "row0", row0)
        object.__setattr__(p, "col0", col0)
        object.__setattr__(p, "bitmap", bitmap)
        object.__setattr__(p, "separated", separated)
        return p

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the bitmap (rows, cols)."""
        return (int(self.bitmap.shape[0]), int(self.bitmap.shape[1]))

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """Inclusive image bounds of the bitmap: (row_min, col_min, row_max, col_max)."""
        h, w = self.shape
        return (self.row0, self.col0, self.row0 + h - 1, self.col0 + w - 1)

    @property
    def area(self) -> int:
        """Number of particle pixels."""
        return int(np.count_nonzero(self.bitmap))

    def paste(self, out: np.ndarray, value: Any = True) -> np.ndarray:
        """Set the particle's pixels in ``out`` (a full-size 2-D array) to ``value``, in place.

        Pixels of the bitmap outside ``out`` are ignored. Returns ``out``.
        """
        if out.ndim != 2:
            raise ValueError(f"Particle.paste: expected a 2-D array, got shape {out.shape}")
        h, w = self.shape
        r0, c0 = max(self.row0, 0), max(self.col0, 0)
        r1, c1 = min(self.row0 + h, out.shape[0]), min(self.col0 + w, out.shape[1])
        if r0 >= r1 or c0 >= c1:
            return out
        sub = self.bitmap[r0 - self.row0 : r1 - self.row0, c0 - self.col0 : c1 - self.col0]
        out[r0:r1, c0:c1][sub] = value
        return out

    def to_mask(self, image_shape: tuple[int, int]) -> np.ndarray:
        """A full-size boolean mask of this particle alone."""
        return self.paste(np.zeros(image_shape, dtype=bool))


def _particles_from_crops(crops: tuple[np.ndarray, ...], separated: bool = False) -> list[Particle]:
    buffer, offsets, shapes, origins = crops
    bits = buffer.view(np.bool_)
    bits.flags.writeable = False  # the slices below inherit it
    off = offsets.tolist()
    sh = shapes.tolist()
    org = origins.tolist()
    return [
        Particle._trusted(org[i][0], org[i][1], bits[off[i] : off[i + 1]].reshape(sh[i]), separated)
        for i in range(len(sh))
    ]


def particles_from_mask(mask: Any, connectivity: Connectivity = 2) -> list[Particle]:
    """Every connected component of ``mask`` as a :class:`Particle` (tight crop).

    Parameters
    ----------
    mask : array_like of bool or int, shape (rows, cols)
        Nonzero pixels are particle.
    connectivity : {1, 2}
        1: 4-neighbours, 2: 8-neighbours (default, as in the SPEC).

    Returns
    -------
    list of Particle
        In raster order of each component's first pixel (the order of :func:`label`).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 6), bool); m[1, 1] = m[2, 4] = m[2, 5] = True
    >>> [p.bbox for p in particles_from_mask(m)]
    [(1, 1, 1, 1), (2, 4, 2, 5)]
    """
    m = _as_mask(mask)
    conn = _check_connectivity(connectivity)
    return _particles_from_crops(_core().particles_from_mask(m, conn))


# --------------------------------------------------------------------------------------------
# labelling and mask utilities
# --------------------------------------------------------------------------------------------


def label(mask: Any, connectivity: Connectivity = 2) -> tuple[np.ndarray, int]:
    """Label the connected components of a binary mask.

    Parameters
    ----------
    mask : array_like of bool or int, shape (rows, cols)
        Nonzero pixels are foreground. Float arrays are refused.
    connectivity : {1, 2}
        1: 4-neighbours, 2: 8-neighbours (scikit-image's convention).

    Returns
    -------
    labels : numpy.ndarray of int32
        0 for background, 1..n numbered in raster order of each component's first pixel.
    n : int
        Number of components.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([[1, 0, 1], [0, 1, 0]], bool)
    >>> label(m)[1], label(m, connectivity=1)[1]
    (1, 3)
    """
    m = _as_mask(mask)
    conn = _check_connectivity(connectivity)
    labels, n, _ = _core().label(m, conn)
    return labels, int(n)


def remove_small_objects(mask: Any, min_px: int, *, connectivity: Connectivity = 2) -> np.ndarray:
    """Drop components with fewer than ``min_px`` pixels; returns a new boolean mask.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((3, 5), bool); m[1, 0] = True; m[1, 2:5] = True
    >>> remove_small_objects(m, 2).astype(int).tolist()
    [[0, 0, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]
    """
    m = _as_mask(mask)
    if isinstance(min_px, bool) or not isinstance(min_px, (int, np.integer)) or min_px < 0:
        raise ValueError(f"min_px: expected an integer ≥ 0, got {min_px!r}")
    out = _core().remove_small_objects(m, int(min_px), _check_connectivity(connectivity))
    return out.view(np.bool_)


def fill_holes(
    mask: Any, smaller_than_px: int | None = None, *, connectivity: Connectivity = 2
) -> np.ndarray:
    """Fill holes (background not connected to the image border); returns a new boolean mask.

    Parameters
    ----------
    mask : array_like of bool or int
        Nonzero pixels are particle.
    smaller_than_px : int or None
        Fill only holes with fewer pixels than this; None fills every hole.
    connectivity : {1, 2}
        Connectivity of the particles; holes use the complementary one (4-connected holes for
        8-connected particles).

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.ones((3, 3), bool); ring[1, 1] = False
    >>> bool(fill_holes(ring)[1, 1]), bool(fill_holes(ring, 1)[1, 1])
    (True, False)
    """
    m = _as_mask(mask)
    if smaller_than_px is None:
        limit = -1
    elif (
        isinstance(smaller_than_px, bool)
        or not isinstance(smaller_than_px, (int, np.integer))
        or smaller_than_px < 0
    ):
        raise ValueError(
            f"smaller_than_px: expected None or an integer ≥ 0, got {smaller_than_px!r}"
        )
    else:
        limit = int(smaller_than_px)
    out = _core().fill_holes(m, limit, _check_connectivity(connectivity))
    return out.view(np.bool_)


def clear_border(mask: Any, *, connectivity: Connectivity = 2) -> np.ndarray:
    """Drop components that touch the image border; returns a new boolean mask.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 4), bool); m[0, 0] = m[2, 2] = True
    >>> np.argwhere(clear_border(m)).tolist()
    [[2, 2]]
    """
    m = _as_mask(mask)
    return _core().clear_border(m, _check_connectivity(connectivity)).view(np.bool_)


# --------------------------------------------------------------------------------------------
# the particle table
# --------------------------------------------------------------------------------------------


def _circularity(area: np.ndarray, perimeter: np.ndarray, variant: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        c = 4.0 * np.pi * area / perimeter**2
        if variant == "corrected":
            r = perimeter / (2.0 * np.pi) + 0.5
            c = c * (1.0 - 0.5 / r) ** 2
    return np.where(perimeter > 0, c, np.nan)


def _table(
    a: dict[str, np.ndarray],
    pixel_size_nm: float,
    circularity: str,
    separated: np.ndarray | None,
    convexity_threshold: float,
) -> pd.DataFrame:
    s = pixel_size_nm
    n = len(a["area"])
    area = a["area"].astype(np.float64)
    perim = a["perimeter"]
    eqd = 2.0 * np.sqrt(area / np.pi)
    with np.errstate(divide="ignore", invalid="ignore"):
        convexity = np.where(
            perim > 0,
            a["convex_perimeter"] / perim,
            np.where(a["convex_perimeter"] > 0, np.inf, 1.0),
        )
        solidity = area / a["convex_area"]
        aspect = a["feret_max"] / a["feret_min"]
    tb = a["touches_border"]
    if np.any(tb == 2):
        touches = pd.array(np.where(tb == 2, None, tb == 1), dtype="boolean")
    else:
        touches = tb.astype(bool)
    cols: dict[str, Any] = {
        "particle_id": np.arange(1, n + 1, dtype=np.int64),
        "area_nm2": area * s * s,
        "equivalent_diameter_nm": eqd * s,
        "perimeter_nm": perim * s,
        "circularity": _circularity(area, perim, circularity),
        "feret_max_nm": a["feret_max"] * s,
        "feret_max_angle_deg": a["feret_max_angle"],
        "feret_min_nm": a["feret_min"] * s,
        "feret_min_angle_deg": a["feret_min_angle"],
        "aspect_ratio": aspect,
        "convexity": convexity,
        "solidity": solidity,
        "centroid_x_nm": a["centroid_col"] * s,
        "centroid_y_nm": a["centroid_row"] * s,
        "bbox_row_min": a["row_min"].astype(np.int64),
        "bbox_col_min": a["col_min"].astype(np.int64),
        "bbox_row_max": a["row_max"].astype(np.int64),
        "bbox_col_max": a["col_max"].astype(np.int64),
        "separated": np.zeros(n, bool) if separated is None else np.asarray(separated, bool),
        "non_convex": convexity <= convexity_threshold,
        "area_px": a["area"].astype(np.int64),
        "equivalent_diameter_px": eqd,
        "perimeter_px": perim,
        "feret_max_px": a["feret_max"],
        "feret_min_px": a["feret_min"],
        "convex_area_px": a["convex_area"].astype(np.int64),
        "convex_perimeter_px": a["convex_perimeter"],
        "centroid_x_px": a["centroid_col"],
        "centroid_y_px": a["centroid_row"],
        "holes": a["holes"].astype(np.int64),
        "touches_border": touches,
    }
    return pd.DataFrame(cols, columns=list(COLUMNS))


def _check_threshold(convexity_threshold: float | None) -> float:
    if convexity_threshold is None:
        return Settings().convexity_threshold
    t = float(convexity_threshold)
    if not (0.0 <= t <= 1.0):
        raise ValueError(
            f"convexity_threshold: expected a number in [0, 1], got {convexity_threshold!r}"
        )
    return t


def measure_particles(
    particles: Sequence[Particle],
    pixel_size_nm: float,
    *,
    circularity: Circularity = "corrected",
    image_shape: tuple[int, int] | None = None,
    convexity_threshold: float | None = None,
) -> pd.DataFrame:
    """Measure a list of particles (which may overlap) in one call to the C++ core.

    Parameters
    ----------
    particles : sequence of Particle
        Each is measured on its own bitmap; all its set pixels form the particle (a bitmap of
        several 8-connected pieces gets the sum of their outer perimeters).
    pixel_size_nm : float
        nm per pixel, finite and > 0.
    circularity : {"corrected", "legacy"}
        Bias-corrected (MATLAB ≥ R2023a) or plain 4π·area/perimeter².
    image_shape : (rows, cols) or None
        Size of the image, to fill ``touches_border``; None leaves it missing (``pd.NA``).
    convexity_threshold : float or None
        ``non_convex`` is ``convexity <= convexity_threshold``; None uses
        ``Settings().convexity_threshold`` (0.95).

    Returns
    -------
    pandas.DataFrame
        One row per particle, columns :data:`COLUMNS`, ``particle_id`` from 1 in input order.

    Examples
    --------
    >>> import numpy as np
    >>> t = measure_particles([Particle(0, 0, np.ones((1, 1), bool))], 0.5)
    >>> float(t.feret_max_nm.iloc[0]), float(t.feret_min_nm.iloc[0]), float(t.perimeter_nm.iloc[0])
    (0.7071067811865476, 0.5, 0.0)
    """
    s = _check_pixel_size(pixel_size_nm)
    variant = _check_circularity(circularity)
    threshold = _check_threshold(convexity_threshold)
    plist = list(particles)
    for i, p in enumerate(plist):
        if not isinstance(p, Particle):
            raise TypeError(f"particles[{i}]: expected a Particle, got {type(p).__name__}")
    if image_shape is None:
        rows, cols = -1, -1
    else:
        rows, cols = (int(v) for v in image_shape)
        if rows <= 0 or cols <= 0:
            raise ValueError(f"image_shape: expected two positive sizes, got {image_shape!r}")
    arrays = _core().measure_crops(*_pack(plist), rows, cols)
    separated = np.array([p.separated for p in plist], dtype=bool)
    return _table(arrays, s, variant, separated, threshold)


def _pack(
    particles: Sequence[Particle],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``particles`` as the core's concatenated crops: ``buffer`` (uint8, every bitmap row-major,
    one after the other), ``offsets`` (int64, n + 1), ``shapes`` and ``origins`` (int32, n × 2)."""
    n = len(particles)
    shapes = np.array([p.shape for p in particles], dtype=np.int32).reshape(n, 2)
    origins = np.array([(p.row0, p.col0) for p in particles], dtype=np.int64).reshape(n, 2)
    if n and (np.abs(origins).max() > np.iinfo(np.int32).max // 2):
        raise ValueError("particles: expected row0/col0 within ±2**30")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(shapes[:, 0].astype(np.int64) * shapes[:, 1], out=offsets[1:])
    if n:
        buffer = np.concatenate([p.bitmap.ravel() for p in particles]).view(np.uint8)
    else:
        buffer = np.zeros(0, dtype=np.uint8)
    return np.ascontiguousarray(buffer), offsets, shapes, origins.astype(np.int32)


def regionprops_table(
    mask: Any,
    pixel_size_nm: float,
    *,
    connectivity: Connectivity = 2,
    circularity: Circularity = "corrected",
    convexity_threshold: float | None = None,
) -> pd.DataFrame:
    """Measure every connected component of ``mask`` as it is (no cleaning, no separation).

    Parameters
    ----------
    mask : array_like of bool or int, shape (rows, cols)
        Nonzero pixels are particle.
    pixel_size_nm : float
        nm per pixel.
    connectivity : {1, 2}
        Component connectivity (2 = 8-neighbours, the SPEC's).
    circularity : {"corrected", "legacy"}
        See :func:`measure_particles`.
    convexity_threshold : float or None
        For ``non_convex``; None uses the settings default (0.95).

    Returns
    -------
    pandas.DataFrame
        Rows in the order of :func:`label` / :func:`particles_from_mask`.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((6, 6), bool); m[1:4, 1:5] = True
    >>> t = regionprops_table(m, 2.0)
    >>> t[["area_nm2", "feret_min_nm", "bbox_col_max"]].values.tolist()
    [[48.0, 6.0, 4.0]]
    """
    m = _as_mask(mask)
    s = _check_pixel_size(pixel_size_nm)
    variant = _check_circularity(circularity)
    conn = _check_connectivity(connectivity)
    threshold = _check_threshold(convexity_threshold)
    if conn == 8:
        arrays, _ = _core().measure_mask(m, False)
    else:
        buffer, offsets, shapes, origins = _core().particles_from_mask(m, conn)
        arrays = _core().measure_crops(buffer, offsets, shapes, origins, *m.shape)
    return _table(arrays, s, variant, None, threshold)


def measure(
    mask: Any,
    pixel_size_nm: float,
    *,
    separation: Literal["uecs", "watershed", "none"] | None = None,
    convexity_threshold: float | None = None,
    min_convexity: float | None = None,
    min_diameter_nm: float | None = None,
    max_holes: int | None = None,
    circularity: Circularity | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """The particle table of a binary mask, as ANTEMA's post-processing gives it (SPEC 4–8).

    Despeckles, gates every 8-connected area by convexity and holes, separates overlapping
    particles, drops border-touching and too small particles, fills holes and measures. This is
    ``antema_fast.postprocess(...).table``; use :func:`antema_fast.postprocess` for each
    particle's mask and the report of what was excluded and why, and :func:`regionprops_table`
    to measure every component as it is.

    Parameters
    ----------
    mask : array_like of bool or int, shape (rows, cols)
        Nonzero pixels are particle. Float arrays are refused (threshold them first).
    pixel_size_nm : float
        nm per pixel, finite and > 0.
    separation : {"uecs", "watershed", "none"} or None
        Separation of overlapping particles (default ``"uecs"``). With ``"none"`` every area is
        measured as it is and flagged ``non_convex`` when its convexity ≤ the threshold.
    convexity_threshold, min_convexity : float or None
        The convexity gate (defaults 0.95 and 0.5).
    min_diameter_nm : float or None
        Despeckle size (default 0.5 nm).
    max_holes : int or None
        Areas with more holes are excluded (default 10).
    circularity : {"corrected", "legacy"} or None
        ``"corrected"`` (default): 4π·A/P²·(1 − 0.5/r)², r = P/(2π) + ½ (MATLAB ≥ R2023a);
        ``"legacy"``: 4π·A/P² (ANTEMA v1.0, ImageJ). Never clipped; NaN when P = 0.
    settings : Settings or None
        Base settings; the keyword arguments above that are not None override its fields.
        None uses :class:`~antema_fast.Settings` defaults (so the defaults live in one place).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` (SPEC section 2 plus ``_px`` twins, ``convex_area_px``,
        ``convex_perimeter_px``, ``holes``, ``touches_border``).

    Notes
    -----
    Perimeter: MATLAB's estimator on the 8-connected outer boundary through pixel centres.
    Feret diameters: exact rotating calipers on the hull of the pixel corners. Convexity:
    perimeter of the convex image / perimeter (1.0 for a single pixel); solidity: area / convex
    area, where the convex image is the set of pixels whose centres lie strictly inside the hull
    of the pixels' edge midpoints.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((8, 8), bool); m[2:5, 2:7] = True
    >>> t = measure(m, 1.0)
    >>> round(float(t.perimeter_px.iloc[0]), 3), float(t.feret_min_px.iloc[0])
    (11.396, 3.0)
    """
    from .separate import postprocess

    given = {
        "separation": separation,
        "convexity_threshold": convexity_threshold,
        "min_convexity": min_convexity,
        "min_diameter_nm": min_diameter_nm,
        "max_holes": max_holes,
        "circularity": circularity,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    return postprocess(mask, pixel_size_nm, settings, **overrides).table


class _CallableModule(types.ModuleType):
    """Makes ``antema_fast.measure(...)`` work even after ``import antema_fast.measure``.

    Importing this submodule binds the package attribute ``measure`` to the module object, which
    would shadow the lazily exported function of the same name; calling the module forwards to
    :func:`measure`.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return measure(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
