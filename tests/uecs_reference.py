"""Plain-Python reference of SPEC steps 4–7 (despeckle, gate, UECS / watershed, cleaning).

This is the test oracle for :mod:`antema_fast.separate` and its C++ kernels. It follows
``SPEC.md`` sections 1 and 3 line by line, using NumPy, SciPy and scikit-image only, and it is
deliberately written for clarity, not speed. Nothing here imports the compiled core.

Conventions (SPEC section 3):

* Every operation runs on the area's tight bounding-box crop.
* Erosion treats pixels outside the crop as foreground, dilation as background.
* The 2 × 2 square has its origin at the top-left element (MATLAB): erosion keeps ``(r, c)`` when
  ``(r, c), (r, c+1), (r+1, c), (r+1, c+1)`` are all set; dilation (by the reflected element) sets
  ``(r, c)`` when any of ``(r, c), (r, c-1), (r-1, c), (r-1, c-1)`` is set. In SciPy's terms both
  are ``origin=-1``.
* The 3 × 3 cross is symmetric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import watershed as sk_watershed

SQUARE = np.ones((2, 2), dtype=bool)
CROSS = ndi.generate_binary_structure(2, 1)
EIGHT = np.ones((3, 3), dtype=bool)

# ----------------------------------------------------------------------------- morphology


def erode(x: np.ndarray, square: bool) -> np.ndarray:
    """Erosion by the 2 × 2 square (MATLAB origin) or the 3 × 3 cross; outside = foreground."""
    if square:
        return ndi.binary_erosion(x, structure=SQUARE, border_value=1, origin=-1)
    return ndi.binary_erosion(x, structure=CROSS, border_value=1)


def dilate(x: np.ndarray, square: bool) -> np.ndarray:
    """Dilation by the reflected 2 × 2 square or the cross; outside = background."""
    if square:
        return ndi.binary_dilation(x, structure=SQUARE, border_value=0, origin=-1)
    return ndi.binary_dilation(x, structure=CROSS, border_value=0)


def open_cross(x: np.ndarray) -> np.ndarray:
    """Opening with the cross: erosion then dilation."""
    return dilate(erode(x, False), False)


def close_cross(x: np.ndarray) -> np.ndarray:
    """Closing with the cross: dilation then erosion."""
    return erode(dilate(x, False), False)


# ----------------------------------------------------------------------------- shape measures

# clockwise on screen (row axis points down): E, SE, S, SW, W, NW, N, NE
_DIRS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))
_DIR_INDEX = {d: i for i, d in enumerate(_DIRS)}


def perimeter(mask: np.ndarray) -> float:
    """Sum of :func:`outer_perimeter` over the 8-connected pieces of ``mask``."""
    lab, n = ndi.label(np.asarray(mask, dtype=bool), structure=EIGHT)
    return float(sum(outer_perimeter(lab == i) for i in range(1, n + 1)))


def outer_perimeter(mask: np.ndarray) -> float:
    """MATLAB's ``regionprops`` perimeter of the outer 8-connected boundary (SPEC section 2).

    The boundary is traced by Moore-neighbour tracing through boundary-pixel centres, starting at
    the first pixel in row-major order and stopping when the first move repeats. The length is
    ``0.980·even + 1.406·odd − 0.091·corners`` where a corner is a change of the squared step
    (row, column or diagonal step) between consecutive steps, cyclically, as MATLAB counts it.
    One pixel, or an empty mask, has perimeter 0.
    """
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    rows, cols = np.nonzero(m)
    if rows.size == 0:
        return 0.0
    start = (int(rows[0]), int(cols[0]))
    p = start
    back = 4  # the west neighbour of the first pixel is background
    codes: list[int] = []
    first: tuple[int, int] | None = None
    while True:
        nxt = None
        for i in range(1, 9):
            d = (back + i) % 8
            q = (p[0] + _DIRS[d][0], p[1] + _DIRS[d][1])
            if m[q]:
                prev = (back + i - 1) % 8
                b = (p[0] + _DIRS[prev][0] - q[0], p[1] + _DIRS[prev][1] - q[1])
                nxt = (q, d, _DIR_INDEX[b])
                break
        if nxt is None:  # isolated pixel
            return 0.0
        q, d, back_q = nxt
        if p == start and first is not None and q == first:
            break
        if first is None:
            first = q
        codes.append(d)
        p, back = q, back_q
    c = np.asarray(codes)
    odd = int(np.count_nonzero(c % 2))
    even = c.size - odd
    # MATLAB compares squared steps: 0 = row step, 1 = column step, 2 = diagonal step
    cls = np.where(c % 2 == 1, 2, np.where(c % 4 == 0, 1, 0))
    corners = int(np.count_nonzero(cls != np.roll(cls, 1)))
    return 0.980 * even + 1.406 * odd - 0.091 * corners


def _hull(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Convex hull (Andrew's monotone chain) of integer points, counter-clockwise, no collinear."""
    pts = sorted(set(points))
    if len(pts) <= 2:
        return pts

    def cross(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[int, int]] = []
    for q in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], q) <= 0:
            lower.pop()
        lower.append(q)
    upper: list[tuple[int, int]] = []
    for q in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], q) <= 0:
            upper.pop()
        upper.append(q)
    return lower[:-1] + upper[:-1]


def convex_image(mask: np.ndarray) -> np.ndarray:
    """Pixels whose centres lie strictly inside the hull of the pixels' edge midpoints.

    Works in doubled coordinates, so every test is exact integer arithmetic. The result has the
    shape of ``mask`` (the hull never reaches a pixel centre outside the mask's bounding box).
    """
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros_like(mask)
    rr, cc = np.nonzero(mask)
    if rr.size == 0:
        return out
    pts: list[tuple[int, int]] = []
    for r in np.unique(rr):
        cs = cc[rr == r]
        for c in (int(cs.min()), int(cs.max())):
            r2, c2 = 2 * int(r), 2 * c
            pts += [(r2 - 1, c2), (r2 + 1, c2), (r2, c2 - 1), (r2, c2 + 1)]
    hull = _hull(pts)
    r0, r1, c0, c1 = rr.min(), rr.max(), cc.min(), cc.max()
    gr, gc = np.mgrid[r0 : r1 + 1, c0 : c1 + 1]
    pr, pc = 2 * gr.astype(np.int64), 2 * gc.astype(np.int64)
    inside = np.ones(pr.shape, dtype=bool)
    for i in range(len(hull)):
        a, b = hull[i], hull[(i + 1) % len(hull)]
        cr = (b[0] - a[0]) * (pc - a[1]) - (b[1] - a[1]) * (pr - a[0])
        inside &= cr > 0  # the hull is counter-clockwise in (row, col) coordinates
    out[r0 : r1 + 1, c0 : c1 + 1] = inside
    return out


def convexity_solidity(mask: np.ndarray) -> tuple[float, float]:
    """``(convexity, solidity)`` of one area (SPEC section 2). Perimeter 0 gives convexity 1."""
    mask = np.asarray(mask, dtype=bool)
    ci = convex_image(mask)
    p = perimeter(mask)
    conv = 1.0 if p == 0 else perimeter(ci) / p
    return conv, float(mask.sum()) / float(ci.sum())


def is_convex(mask: np.ndarray, t: float) -> bool:
    """UECS's test: convex when convexity > t and 1 − solidity < 0.05."""
    conv, sol = convexity_solidity(mask)
    return not (conv <= t or 1.0 - sol >= 0.05)


def minor_axis_length(mask: np.ndarray) -> float:
    """MATLAB's minor axis: ``4·√(λ_min + 1/12)``, covariance normalised by N."""
    rr, cc = np.nonzero(mask)
    r = rr - rr.mean()
    c = cc - cc.mean()
    a, b, d = float((c * c).mean()), float((r * r).mean()), float((r * c).mean())
    lam = 0.5 * (a + b - math.sqrt((a - b) ** 2 + 4 * d * d))
    return 4.0 * math.sqrt(max(lam, 0.0) + 1.0 / 12.0)


def count_holes(mask: np.ndarray) -> int:
    """Holes of an area: 4-connected background components not reaching the border."""
    bg = ~np.pad(np.asarray(mask, dtype=bool), 1)
    _, n = ndi.label(bg, structure=CROSS)
    return n - 1


# ----------------------------------------------------------------------------- UECS


@dataclass
class UecsResult:
    """Particles (bitmaps of the crop's shape) and dropped pieces ``(reason, bitmap)``."""

    particles: list[np.ndarray] = field(default_factory=list)
    erosions: list[int] = field(default_factory=list)
    dropped: list[tuple[str, np.ndarray]] = field(default_factory=list)


def uecs(area: np.ndarray, min_marker_area: int, threshold: float = 0.95) -> UecsResult:
    """UECS of one area crop, as SPEC section 3 says, step by step."""
    a = np.asarray(area, dtype=bool)
    m = int(min_marker_area)
    e = a.copy()
    markers: list[tuple[np.ndarray, int]] = []
    res = UecsResult()
    k = 0
    unchanged = 0
    limit = 2 * (a.shape[0] + a.shape[1]) + 4
    while e.any():
        square = k % 2 == 0
        lab, n = ndi.label(e, structure=EIGHT)
        to_erode = np.zeros_like(e)
        for i in range(1, n + 1):
            comp = lab == i
            size = int(comp.sum())
            if (
                size > m
                and minor_axis_length(comp) > m // 10
                and not is_convex(comp, threshold)
                and k < limit
                and unchanged < 2
            ):
                to_erode |= comp
            elif size > m:
                markers.append((comp, k + 1))
            else:
                res.dropped.append(("marker_too_small", comp))
        if not to_erode.any():
            break
        new = open_cross(erode(to_erode, square))
        lab_old, n_old = ndi.label(to_erode, structure=EIGHT)
        for i in range(1, n_old + 1):
            comp = lab_old == i
            if not (new & comp).any():
                res.dropped.append(("marker_too_small", comp))
        unchanged = unchanged + 1 if np.array_equal(new, to_erode) else 0
        e = new
        k += 1
    for marker, count in markers:
        grown = regrow(marker, count, a)
        if is_convex(grown, threshold):
            res.particles.append(grown)
            res.erosions.append(count)
        else:
            res.dropped.append(("regrown_non_convex", grown))
    return res


def regrow(marker: np.ndarray, count: int, area: np.ndarray) -> np.ndarray:
    """Regrow a marker inside ``area`` by at most ``count`` alternating steps (square first)."""
    mk = marker.copy()
    for j in range(count):
        square = j % 2 == 0
        d = close_cross(dilate(mk, square))
        ring = d & ~mk
        accepted = ring & area
        mk |= accepted
        if square:
            na, nr = int(accepted.sum()), int(ring.sum())
            if na == 0 or 4 * na < nr:
                break
    return mk


# ----------------------------------------------------------------------------- watershed


def watershed(area: np.ndarray, h: float = 2.0) -> list[np.ndarray]:
    """Marker-controlled watershed of one area crop (scikit-image), lines removed."""
    a = np.pad(np.asarray(area, dtype=bool), 1)
    dist = ndi.distance_transform_edt(a)
    hmax = reconstruction(np.maximum(dist - h, 0.0), dist, method="dilation")
    maxima = local_maxima(hmax, connectivity=2, allow_borders=True) & a
    markers, _ = ndi.label(maxima, structure=EIGHT)
    ws = sk_watershed(-dist, markers, mask=a, connectivity=2, watershed_line=True)
    ws = ws[1:-1, 1:-1]
    return [ws == i for i in range(1, int(ws.max()) + 1) if (ws == i).any()]


# ----------------------------------------------------------------------------- pipeline


@dataclass
class ReferenceResult:
    """Particles as ``(row0, col0, bitmap, separated)`` and exclusions as ``(reason, area)``."""

    particles: list[tuple[int, int, np.ndarray, bool]]
    excluded: list[tuple[str, int]]


def min_area_px(min_diameter_nm: float, pixel_size_nm: float) -> int:
    """``ceil(π/4 · (d_min/s)²)``, written out independently of ``Settings``."""
    return int(math.ceil(math.pi / 4.0 * (min_diameter_nm / pixel_size_nm) ** 2 - 1e-9))


def _tight(bitmap: np.ndarray) -> tuple[int, int, np.ndarray]:
    rr, cc = np.nonzero(bitmap)
    r0, c0 = int(rr.min()), int(cc.min())
    return r0, c0, bitmap[r0 : int(rr.max()) + 1, c0 : int(cc.max()) + 1]


def postprocess(
    mask: np.ndarray,
    pixel_size_nm: float,
    *,
    separation: str = "uecs",
    convexity_threshold: float = 0.95,
    min_convexity: float = 0.5,
    min_diameter_nm: float = 0.5,
    max_holes: int = 10,
    min_marker_area_px: int = 30,
) -> ReferenceResult:
    """SPEC steps 4–7 on a whole mask, in plain Python."""
    mask = np.asarray(mask, dtype=bool)
    amin = min_area_px(min_diameter_nm, pixel_size_nm)
    m = max(min_area_px(0.5, pixel_size_nm), min_marker_area_px)
    excluded: list[tuple[str, int]] = []
    # step 4: despeckle, fill small holes
    lab, n = ndi.label(mask, structure=EIGHT)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    for i in np.nonzero(sizes[1:] < amin)[0] + 1:
        excluded.append(("speck", int(sizes[i])))
    mask = mask & (sizes[lab] >= amin) & (lab > 0)
    blab, bn = ndi.label(~mask, structure=CROSS)
    bsizes = np.bincount(blab.ravel(), minlength=bn + 1)
    edge = np.unique(np.concatenate([blab[0], blab[-1], blab[:, 0], blab[:, -1]]))
    small = bsizes < amin
    small[0] = False
    small[edge] = False
    mask = mask | small[blab]
    rows, cols = mask.shape
    # steps 5 and 6
    lab, n = ndi.label(mask, structure=EIGHT)
    candidates: list[tuple[int, int, np.ndarray, bool]] = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        crop = lab[sl] == i
        r0, c0 = sl[0].start, sl[1].start
        if separation == "none":
            candidates.append((r0, c0, crop, False))
            continue
        if count_holes(crop) > max_holes:
            excluded.append(("too_many_holes", int(crop.sum())))
            continue
        conv, _ = convexity_solidity(crop)
        if conv > convexity_threshold:
            candidates.append((r0, c0, crop, False))
        elif conv < min_convexity:
            excluded.append(("low_convexity", int(crop.sum())))
        else:
            if separation == "uecs":
                res = uecs(crop, m, convexity_threshold)
                pieces = res.particles
                excluded += [(why, int(b.sum())) for why, b in res.dropped]
            else:
                pieces = watershed(crop)
            for piece in pieces:
                pr, pc, bm = _tight(piece)
                candidates.append((r0 + pr, c0 + pc, bm, True))
    # step 7
    particles = []
    for r0, c0, bm, sep in candidates:
        h, w = bm.shape
        if r0 == 0 or c0 == 0 or r0 + h == rows or c0 + w == cols:
            excluded.append(("border", int(bm.sum())))
            continue
        if bm.sum() < amin:
            excluded.append(("speck", int(bm.sum())))
            continue
        particles.append((r0, c0, ndi.binary_fill_holes(bm), sep))
    return ReferenceResult(particles, excluded)
