"""Finding a scale bar burned into an exported micrograph, with its label.

Exported pictures (TIFF, PNG, JPEG from DigitalMicrograph, Velox, a camera's software or a
figure) often carry a scale bar drawn into the pixels: a solid, horizontal rectangle at the
picture's darkest or brightest value, with its label ("50 nm") in the same colour next to it,
sometimes on a box of the opposite colour. Segmented, the bar becomes a "particle" of aspect
ratio 10 or more and the letters become small ones.

``analyze`` only *warns* when it sees one (with the ``--ignore-region`` that leaves it out); with
``Settings.ignore_scale_bar`` the region found is ignored in each image. The rules are strict,
because a silent exclusion of specimen would be worse than the warning missing:

* the bar is a connected set of pixels within a tolerance of the image's minimum or maximum:
  4 % of the range, then (where that finds none) 12 % (:data:`VALUE_TOLERANCES`; JPEG
  compression moves a drawn bar's pixels by up to about 10 levels in 255, and the narrow
  tolerance keeps a bar apart from a background close to its value),
  after an opening with a horizontal line of :data:`MIN_LENGTH` px (so that letters touching
  the bar fall off it);
* its bounding box is filled almost completely (:data:`MIN_FILL`), each of its rows and columns
  too, so it is a rectangle with straight edges, not a clipped particle or rod (where the bar
  runs into a particle of its colour, the longest run of full columns is the bar);
* it is at least :data:`MIN_THICKNESS` px thick and :data:`MIN_LENGTH` px long, at least
  :data:`MIN_ASPECT` times longer than thick, at most 60 % of the width and 8 % of the height,
  and it does not touch the image border (an edge strip is a data bar or padding,
  :mod:`antema_fast._databar`);
* it stands out: at most :data:`MAX_RING_SHARE` of the pixels around its box have its value,
  and no row within twice its thickness plus 6 px above or below it is
  :data:`MAX_PARALLEL_FILL` filled along its length (lattice fringes clipped at the picture's
  extremes are sets of such parallel lines).

The label is what has the bar's value near it: within a window that reaches half the bar's
length to each side and six bar thicknesses plus 8 px up and down, components of at least 3
such pixels are added to the region. When the bar sits on a solid box of the opposite extreme
value, the box is the region. The region is padded by half the bar's thickness (at least 2 px)
so that anti-aliased letter edges fall inside it.

Vertical bars are found the same way in the transposed picture (their label's window reaches
half the bar's length to each side, since a label written horizontally beside a vertical bar is
wide); the longest bar wins, a horizontal one between equals. A bar in a colour that is not the
image's extreme is left to ``--ignore-region``.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from ._databar import extremes

VALUE_TOLERANCES = (0.04, 0.12)
MIN_FILL = 0.97
MIN_LINE_FILL = 0.9
MIN_THICKNESS = 2
MIN_LENGTH = 25
MIN_ASPECT = 6.0
MAX_RING_SHARE = 0.1
MIN_LABEL_PX = 3
MAX_PARALLEL_FILL = 0.6
MAX_GAP = 2


def find_scale_bar(image: Any) -> dict[str, Any] | None:
    """The burned-in scale bar of ``image`` with its label, or None.

    Returns
    -------
    dict or None
        ``bar``: the bar's rectangle ``(x, y, width, height)`` in pixels (x the column of its
        left end, y the row of its top); ``value``: ``"max"`` or ``"min"``, the extreme it is
        drawn in; ``length_px``: its length (its long side); ``orientation``: ``"horizontal"``
        or ``"vertical"``; ``region``: the ``Settings.ignore_regions`` rectangle that leaves the
        bar and its label out.

    Examples
    --------
    >>> img = np.random.default_rng(0).integers(40, 200, (200, 200)).astype(np.uint8)
    >>> img[170:175, 120:180] = 255     # the bar
    >>> img[155:165, 130:134] = 255     # a letter
    >>> r = find_scale_bar(img)
    >>> r["bar"], r["value"], r["region"]
    ((120, 170, 60, 5), 'max', (118, 153, 64, 24))
    >>> find_scale_bar(img[:150]) is None
    True
    """
    checked = extremes(image, 4 * MIN_THICKNESS, MIN_LENGTH + 2)
    if checked is None:
        return None
    d, lo, hi = checked
    found = []
    for tolerance in VALUE_TOLERANCES:
        low, high = _bounds(d, lo, hi, tolerance)
        for name, cls in (("max", d >= high), ("min", d <= low)):
            if cv2.countNonZero(cls.view(np.uint8)) > 0.5 * d.size:
                continue  # a binary picture, or mostly clipped: nothing stands out
            other = d <= low if name == "max" else d >= high
            for vertical in (False, True):
                # a vertical bar is a horizontal one of the transposed picture
                c, o = (
                    (np.ascontiguousarray(cls.T), np.ascontiguousarray(other.T))
                    if vertical
                    else (cls, other)
                )
                bar = _longest_bar(c)
                if bar is not None:
                    found.append((bar[2], not vertical, name, vertical, bar, c, o))
        if found:
            break
    if not found:
        return None
    # the longest; between equally long ones the horizontal (the usual orientation)
    _, _, name, vertical, bar, cls, other = max(found, key=lambda f: (f[0], f[1]))
    # JPEG moves single pixels of a bar past the tolerance, and one such column ends the run of
    # full columns early: the ends are measured on the bar's mean profile instead
    tol = VALUE_TOLERANCES[-1] * (float(hi) - float(lo))
    bar = _extended(bar, np.ascontiguousarray(d.T) if vertical else d, cls, tol)
    region = _box_region(bar, other) or _label_region(bar, cls, vertical)
    if vertical:
        bar, region = _transposed(bar), _transposed(region)
    return {
        "bar": tuple(int(v) for v in bar),
        "value": name,
        "length_px": int(max(bar[2], bar[3])),
        "orientation": "vertical" if vertical else "horizontal",
        "region": tuple(int(v) for v in region),
    }


def _transposed(rect: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the transposed picture in the picture's own coordinates."""
    x, y, w, h = rect
    return (y, x, h, w)


def _bounds(d: np.ndarray, lo: Any, hi: Any, tolerance: float) -> tuple[Any, Any]:
    """The values within ``tolerance`` of the range from ``lo`` and ``hi``, as the image's dtype
    where it is an integer one (a comparison with a float would convert the whole image)."""
    tol = tolerance * (float(hi) - float(lo))
    low, high = float(lo) + tol, float(hi) - tol
    if np.issubdtype(d.dtype, np.integer):
        return d.dtype.type(math.floor(low)), d.dtype.type(math.ceil(high))
    return d.dtype.type(low), d.dtype.type(high)


def _longest_bar(cls: np.ndarray) -> tuple[int, int, int, int] | None:
    """The longest component of ``cls`` that passes the bar rules, as (x, y, w, h)."""
    h_img, w_img = cls.shape
    # the horizontal runs of at least MIN_LENGTH px: letters touching the bar fall off (an odd
    # kernel, so that the opening does not shift what it keeps)
    kernel = np.ones((1, MIN_LENGTH), np.uint8)
    eroded = cv2.erode(cls.view(np.uint8), kernel)
    # most images have no such run two rows thick: the rest of the work is for those that do
    if not cv2.countNonZero(cv2.erode(eroded, np.ones((MIN_THICKNESS, 1), np.uint8))):
        return None
    ex, oy, ew, oh = cv2.boundingRect(eroded)
    half = MIN_LENGTH // 2
    ox, ow = max(ex - half, 0), min(ex + ew + half, w_img) - max(ex - half, 0)
    core = cv2.dilate(np.ascontiguousarray(eroded[oy : oy + oh, ox : ox + ow]), kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=4)
    x, y, w, h = (stats[1:, k] for k in range(4))
    ok = (h >= MIN_THICKNESS) & (w >= MIN_LENGTH) & (h <= max(MIN_THICKNESS, 0.08 * h_img))
    best: tuple[int, int, int, int] | None = None
    for i in np.flatnonzero(ok):
        bx, by, bw, bh = int(x[i]), int(y[i]), int(w[i]), int(h[i])
        own = labels[by : by + bh, bx : bx + bw] == i + 1
        bx, by = bx + ox, by + oy
        # the longest run of full columns: a bar drawn into a dark particle ends where the
        # particle's pixels stop filling its rows (a column or two that JPEG left half full
        # between full ones do not end it)
        fill = own.mean(axis=0)
        start, run = _longest_run(_bridged(fill >= MIN_LINE_FILL, fill >= 0.5, MAX_GAP))
        bx, bw = bx + start, run
        own = own[:, start : start + run]
        if not (
            bw >= MIN_LENGTH
            and bw >= MIN_ASPECT * bh
            and bw <= 0.6 * w_img
            and own.mean() >= MIN_FILL
            and own.mean(axis=1).min() >= MIN_LINE_FILL
            and bx > 0
            and by > 0
            and bx + bw < w_img
            and by + bh < h_img
        ):
            continue
        ring = cls[by - 1 : by + bh + 1, bx - 1 : bx + bw + 1].copy()
        ring[1:-1, 1:-1] = False
        if ring.sum() > MAX_RING_SHARE * 2 * (bw + bh + 2):
            continue
        if _has_parallel_line(cls, (bx, by, bw, bh)):
            continue
        if best is None or bw > best[2]:
            best = (bx, by, bw, bh)
    return best


def _has_parallel_line(cls: np.ndarray, bar: tuple[int, int, int, int]) -> bool:
    """Whether a line parallel to the bar (x, y, w, h) runs within ``2 * h + 6`` px above or
    below it: rows of ``cls`` that cover :data:`MAX_PARALLEL_FILL` of the bar's columns, at
    most twice as thick as the bar, with rows that do not on both sides. Then the bar is one of
    several parallel lines (lattice fringes clipped in an HRTEM picture), not a bar that stands
    alone. A label's letters fill much less of any row, and a background of the bar's colour
    beyond a box it is drawn on is no line (it goes on past the band)."""
    bx, by, bw, bh = bar
    reach = 2 * bh + 6
    # each band ordered from the bar outwards
    above = cls[max(by - reach, 0) : max(by - 1, 0), bx : bx + bw][::-1]
    below = cls[by + bh + 1 : by + bh + reach, bx : bx + bw]
    for band in (above, below):
        if not band.size:
            continue
        full = band.mean(axis=1) >= MAX_PARALLEL_FILL
        for start, stop in _runs(full):  # a run reaching the band's far end goes on beyond it
            if stop < len(full) and stop - start <= max(2 * bh, 3):
                return True
    return False


def _extended(
    bar: tuple[int, int, int, int], d: np.ndarray, cls: np.ndarray, tolerance: float
) -> tuple[int, int, int, int]:
    """``bar`` (x, y, w, h) lengthened at each end over the columns whose mean over the bar's
    rows lies within ``tolerance`` (in the image's units) of the bar's level (the median of
    that mean over the bar) and that are at least half in ``cls`` (the bar's class), gaps of up
    to :data:`MAX_GAP` columns bridged: the mean over the rows averages out the single pixels
    JPEG moves. Where that reaches the border, the bar ran into a background of its value, and
    ``bar`` is returned as it was."""
    bx, by, bw, bh = bar
    w_img = d.shape[1]
    rows = slice(by, by + bh)
    profile = d[rows].astype(np.float64).mean(axis=0)
    level = float(np.median(profile[bx : bx + bw]))
    close = np.abs(profile - level) <= tolerance
    near = close & (cls[rows].mean(axis=0) >= 0.5)
    near[bx : bx + bw] = True
    near = _bridged(near, close, MAX_GAP)
    x0, x1 = bx, bx + bw  # [x0, x1)
    while x0 > 0 and near[x0 - 1]:
        x0 -= 1
    while x1 < w_img and near[x1]:
        x1 += 1
    if x0 == 0 or x1 == w_img:
        return bar
    return (x0, by, x1 - x0, bh)


def _bridged(flags: np.ndarray, weak: np.ndarray, gap: int) -> np.ndarray:
    """``flags`` with each run of at most ``gap`` False between two True set True where
    ``weak`` holds all along it."""
    out = flags.copy()
    for a, b in _runs(~flags):
        if 0 < a and b < len(flags) and b - a <= gap and weak[a:b].all():
            out[a:b] = True
    return out


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in ``flags``, ``flags[start:stop]`` all True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    """Start and length of the longest run of True in ``flags`` ((0, 0) when there is none)."""
    runs = _runs(flags)
    if not runs:
        return 0, 0
    start, stop = max(runs, key=lambda r: r[1] - r[0])
    return start, stop - start


def _box_region(bar: tuple[int, int, int, int], other: np.ndarray) -> tuple[int, ...] | None:
    """The box of the opposite extreme the bar is drawn on, as (x, y, w, h), or None."""
    bx, by, bw, bh = bar
    ring = other[by - 1 : by + bh + 1, bx - 1 : bx + bw + 1].copy()
    inner = np.zeros_like(ring)
    inner[1:-1, 1:-1] = True
    if ring[~inner].mean() < 0.9:
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(other.view(np.uint8), connectivity=8)
    ids = np.unique(labels[by - 1 : by + bh + 1, bx - 1 : bx + bw + 1][~inner])
    ids = ids[ids > 0]
    if len(ids) != 1:
        return None
    x, y, w, h, area = (int(v) for v in stats[ids[0]])
    h_img, w_img = other.shape
    # a solid box with letters and the bar cut out of it, not the dark half of a micrograph
    if area < 0.5 * w * h or w * h > 0.25 * h_img * w_img or w < bw or h < 2 * bh:
        return None
    return _pad((x, y, w, h), 1, other.shape)


def _label_region(
    bar: tuple[int, int, int, int], cls: np.ndarray, vertical: bool = False
) -> tuple[int, ...]:
    """The bar and the pixels of its value near it (the label), padded, as (x, y, w, h).

    ``vertical``: ``cls`` is the transposed picture of a vertical bar, whose label (written
    across it, as labels are) reaches farther to its sides: half the bar's length."""
    bx, by, bw, bh = bar
    h_img, w_img = cls.shape
    reach = max(6 * bh + 8, bw // 2) if vertical else 6 * bh + 8
    x0, x1 = max(bx - bw // 2, 0), min(bx + bw + bw // 2, w_img)
    y0, y1 = max(by - reach, 0), min(by + bh + reach, h_img)
    window = cls[y0:y1, x0:x1]
    n, _, stats, _ = cv2.connectedComponentsWithStats(window.view(np.uint8), connectivity=8)
    left, top, right, bottom = bx, by, bx + bw, by + bh
    for sx, sy, sw, sh, area in stats[1:]:
        if area < MIN_LABEL_PX:
            continue
        left, top = min(left, x0 + int(sx)), min(top, y0 + int(sy))
        right, bottom = max(right, x0 + int(sx + sw)), max(bottom, y0 + int(sy + sh))
    return _pad((left, top, right - left, bottom - top), max(2, bh // 2), cls.shape)


def _pad(rect: tuple[int, int, int, int], pad: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    x, y, w, h = rect
    x0, y0 = max(x - pad, 0), max(y - pad, 0)
    x1, y1 = min(x + w + pad, shape[1]), min(y + h + pad, shape[0])
    return (x0, y0, x1 - x0, y1 - y0)
