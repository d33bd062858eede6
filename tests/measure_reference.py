"""Plain-Python references for the measurement tests (independent of the C++ core).

* ``trace_outer``: Moore-neighbour tracing of the outer boundary, stopped by cycle detection on
  the tracer's state (pixel, backtrack), written without looking at the C++ tracer.
* ``matlab_perimeter``: MATLAB regionprops' estimator written as in MATLAB, on the closed
  contour B (first point repeated at the end).
* ``corner_points``, ``hull`` (monotone chain on Python ints), ``feret_bruteforce``: the Feret
  oracles of the issue (max pairwise distance of hull vertices; min over hull edges of the max
  vertex distance to the edge line).
* ``convex_image_bruteforce``: pixel centres strictly inside the hull of the edge midpoints,
  tested against every hull edge with integer arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

# clockwise on screen (row down), starting east
_DIRS = [(0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1)]


def trace_outer(obj: np.ndarray, start: tuple[int, int]) -> list[tuple[int, int]]:
    """Closed outer contour of the 8-connected object containing ``start`` (its first pixel in
    raster order), as a list of (row, col) with the first point repeated at the end."""
    rows, cols = obj.shape

    def fg(r: int, c: int) -> bool:
        return 0 <= r < rows and 0 <= c < cols and bool(obj[r, c])

    pos = start
    back = (start[0], start[1] - 1)  # west neighbour: background (start is the first pixel)
    contour = [pos]
    states: dict[tuple[tuple[int, int], tuple[int, int]], int] = {}
    while True:
        state = (pos, back)
        if state in states:
            j = states[state]
            break
        states[state] = len(contour) - 1
        # neighbours of pos clockwise, beginning right after the backtrack pixel
        k0 = _DIRS.index((back[0] - pos[0], back[1] - pos[1]))
        nxt = None
        prev = back
        for k in range(1, 8):
            dr, dc = _DIRS[(k0 + k) % 8]
            cand = (pos[0] + dr, pos[1] + dc)
            if fg(*cand):
                nxt = cand
                break
            prev = cand
        if nxt is None:  # isolated pixel
            return [start, start]
        back = prev
        pos = nxt
        contour.append(pos)
    # The tracer is periodic from state j on. j == 0: the contour already ends at the start.
    # j == 1: it re-entered the start with another backtrack and went on to the second point.
    assert j in (0, 1), j
    if j == 1:
        contour.pop()
    assert contour[-1] == start
    return contour


def matlab_perimeter(contour: list[tuple[int, int]]) -> float:
    """MATLAB's regionprops perimeter of a closed contour B (first point repeated)."""
    b = np.asarray(contour, dtype=np.int64)
    delta = np.diff(b, axis=0) ** 2
    if delta.shape[0] > 1:
        is_corner = np.any(np.diff(np.vstack([delta, delta[:1]]), axis=0) != 0, axis=1)
        is_even = np.any(delta == 0, axis=1)
        return float(np.sum(is_even) * 0.980 + np.sum(~is_even) * 1.406 - np.sum(is_corner) * 0.091)
    return 0.0


def perimeter_reference(obj: np.ndarray) -> float:
    """Sum of the outer perimeters of the 8-connected pieces of ``obj``."""
    from scipy import ndimage

    lab, n = ndimage.label(obj, structure=np.ones((3, 3)))
    total = 0.0
    for i in range(1, n + 1):
        piece = lab == i
        r, c = np.argwhere(piece)[0]  # argwhere is in raster order
        total += matlab_perimeter(trace_outer(piece, (int(r), int(c))))
    return total


def circularity_reference(area: float, perimeter: float, corrected: bool) -> float:
    if perimeter == 0:
        return math.nan
    c = 4 * math.pi * area / perimeter**2
    if corrected:
        r = perimeter / (2 * math.pi) + 0.5
        c *= (1 - 0.5 / r) ** 2
    return c


def _cross(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def hull(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Convex hull (monotone chain, Python ints, counter-clockwise, no collinear points)."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts
    lower: list[tuple[int, int]] = []
    for p in pts:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[int, int]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def corner_points(obj: np.ndarray) -> list[tuple[int, int]]:
    """All pixel corners; corner (i, j) is the point (i - 1/2, j - 1/2)."""
    pts = set()
    for r, c in np.argwhere(obj):
        r, c = int(r), int(c)
        pts.update({(r, c), (r + 1, c), (r, c + 1), (r + 1, c + 1)})
    return sorted(pts)


def fold_angle(dy: float, dx: float) -> float:
    a = math.degrees(math.atan2(-dy, dx))
    if a < 0:
        a += 180.0
    if a >= 180.0:
        a -= 180.0
    return a


def feret_bruteforce(obj: np.ndarray) -> dict[str, object]:
    """Max and min Feret diameters (pixels) by brute force on the hull of the pixel corners,
    with the sets of angles (degrees) at which they are attained."""
    h = hull(corner_points(obj))
    best2 = -1
    max_angles: set[float] = set()
    for i in range(len(h)):
        for j in range(i + 1, len(h)):
            dy, dx = h[j][0] - h[i][0], h[j][1] - h[i][1]
            d2 = dy * dy + dx * dx
            if d2 > best2:
                best2, max_angles = d2, set()
            if d2 == best2:
                max_angles.add(fold_angle(dy, dx))
    widths = []
    for i in range(len(h)):
        a, b = h[i], h[(i + 1) % len(h)]
        ey, ex = b[0] - a[0], b[1] - a[1]
        far = max(abs(ey * (p[1] - a[1]) - ex * (p[0] - a[0])) for p in h)
        widths.append((far / math.hypot(ey, ex), fold_angle(-ex, ey)))
    wmin = min(w for w, _ in widths)
    min_angles = {ang for w, ang in widths if abs(w - wmin) < 1e-9}
    return {
        "max": math.sqrt(best2),
        "max_angles": max_angles,
        "min": wmin,
        "min_angles": min_angles,
        "hull": h,
    }


def convex_image_bruteforce(obj: np.ndarray) -> np.ndarray:
    """Pixels whose centres lie strictly inside the hull of the pixels' edge midpoints."""
    pts = set()
    for r, c in np.argwhere(obj):
        r, c = int(r), int(c)
        pts.update({(2 * r - 1, 2 * c), (2 * r + 1, 2 * c), (2 * r, 2 * c - 1), (2 * r, 2 * c + 1)})
    h = hull(sorted(pts))
    out = np.zeros(obj.shape, dtype=bool)
    for r in range(obj.shape[0]):
        for c in range(obj.shape[1]):
            p = (2 * r, 2 * c)
            out[r, c] = all(_cross(h[i], h[(i + 1) % len(h)], p) > 0 for i in range(len(h)))
    return out
