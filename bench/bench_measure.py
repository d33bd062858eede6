"""Benchmark of the particle table: antema_fast.measure vs scikit-image vs an OpenCV pipeline.

Masks of 1024² with ~500 particles and 4096² with ~8000 particles (random discs and ellipses,
some touching), generated with a fixed seed. Each library runs single-threaded in the same
process on the same mask; counts and areas are asserted equal before any timing is printed.

* antema_fast: ``antema_fast.measure(mask, s)`` — labelling, area, centroid, bbox, holes, MATLAB
  perimeter, exact Feret max/min with angles, convex image (area, perimeter), convexity,
  solidity, circularity: the whole SPEC table.
* scikit-image: ``label`` + ``regionprops`` reading area, perimeter, feret_diameter_max,
  area_convex, solidity, equivalent_diameter_area.
* OpenCV: ``connectedComponentsWithStats`` + ``findContours`` + ``convexHull`` +
  ``minAreaRect`` per contour (computes less than we do).

Run: ``nice -n 10 python bench/bench_measure.py [--sizes 1024 4096] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# blobs placed per 1024² so that ~500 components remain after touching ones merge
PLACED_PER_MPX = 700


def make_mask(size: int, n_particles: int, seed: int = 0) -> np.ndarray:
    """Random discs and ellipses (radii 4-14 px), placed uniformly; some touch or overlap."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(n_particles):
        a = rng.uniform(4.0, 14.0)
        b = a * rng.uniform(0.55, 1.0) if rng.random() < 0.5 else a
        t = rng.uniform(0, math.pi)
        r0, c0 = rng.uniform(16, size - 16, size=2)
        n = int(math.ceil(a)) + 1
        rr, cc = np.mgrid[-n : n + 1, -n : n + 1].astype(float)
        ri, ci = int(round(r0)), int(round(c0))
        x = cc + ci - c0
        y = rr + ri - r0
        u = x * math.cos(t) + y * math.sin(t)
        v = -x * math.sin(t) + y * math.cos(t)
        blob = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        mask[ri - n : ri + n + 1, ci - n : ci + n + 1] |= blob
    return mask


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_antema(mask: np.ndarray) -> tuple[int, np.ndarray]:
    import antema_fast

    t = antema_fast.regionprops_table(mask, 1.0)
    return len(t), t.area_px.to_numpy()


def run_skimage(mask: np.ndarray) -> tuple[int, np.ndarray]:
    from skimage.measure import label, regionprops

    lab = label(mask, connectivity=2)
    areas = []
    for p in regionprops(lab):
        areas.append(p.area)
        _ = (
            p.perimeter,
            p.feret_diameter_max,
            p.area_convex,
            p.solidity,
            p.equivalent_diameter_area,
        )
    return len(areas), np.asarray(areas, dtype=np.int64)


def run_opencv(mask: np.ndarray) -> tuple[int, np.ndarray]:
    import cv2

    m8 = mask.view(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(m8, connectivity=8)
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for c in contours:
        cv2.convexHull(c)
        cv2.minAreaRect(c)
    if len(contours) != n - 1:
        raise AssertionError(f"OpenCV: {len(contours)} contours for {n - 1} components")
    return n - 1, stats[1:, cv2.CC_STAT_AREA].astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skimage-repeat", type=int, default=1)
    args = ap.parse_args(argv)

    import cv2

    cv2.setNumThreads(1)
    print(
        f"{'mask':>10} {'particles':>9} {'antema ms':>10} {'skimage ms':>11} {'opencv ms':>10} "
        f"{'vs skimage':>10} {'vs opencv':>10}"
    )
    for size in args.sizes:
        n_target = round(PLACED_PER_MPX * (size / 1024) ** 2)
        mask = make_mask(size, n_target, seed=size)
        run_antema(mask)  # warm-up (loads the extension)
        ta, (na, aa) = best_time(lambda m=mask: run_antema(m), args.repeat)
        to, (no, ao) = best_time(lambda m=mask: run_opencv(m), args.repeat)
        ts, (ns, as_) = best_time(lambda m=mask: run_skimage(m), args.skimage_repeat)
        assert na == ns == no, (na, ns, no)
        # scikit-image numbers components in raster order of the first pixel, as we do; OpenCV's
        # block-based labelling numbers them differently, so its areas are compared as a multiset
        assert np.array_equal(aa, as_), "areas differ from scikit-image"
        assert np.array_equal(np.sort(aa), np.sort(ao)), "areas differ from OpenCV"
        print(
            f"{size:>5}x{size:<4} {na:>9} {ta * 1e3:>10.1f} {ts * 1e3:>11.1f} {to * 1e3:>10.1f} "
            f"{ts / ta:>9.1f}x {to / ta:>9.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
