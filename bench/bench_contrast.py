"""Benchmark of the contrast test (``Settings.min_contrast_z``): C++ core vs the plain way.

Frames of 1024² with 500 particles and 4096² with 8000 (discs of radius 2–12 px, a third of
them dark against shot noise, the rest plain noise, as a low-dose segmentation gives), 16-bit
counts. Both run single-threaded in the same process on the same frame and particles:

* ``core``: ``antema_fast.separate.contrast_z`` (C++, ``antema/contrast.hpp``);
* ``plain``: ``tests/contrast_reference.contrast_z`` — per particle, its padded crop, two
  OpenCV dilations and NumPy means (the test oracle).

Before any timing is printed it asserts that both give the same z (relative 1e-9, NaN alike),
then prints ms per frame, µs per particle and the ratio, and the share of ``postprocess`` the
test adds.

Run: ``nice -n 10 python bench/bench_contrast.py [--sizes 1024 4096] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import contrast_reference as ref  # noqa: E402
from antema_fast.separate import contrast_z, postprocess  # noqa: E402

S = 0.5  # nm/px: despeckle area 1 px


def make_frame(size: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A shot-noise frame (about 20 counts) and its 'segmentation': ``n`` discs at random
    places without overlaps, one in three a real particle 40 % darker."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), bool)
    dark = np.zeros((size, size), bool)
    placed = 0
    while placed < n:
        r = rng.uniform(2.0, 12.0)
        cy, cx = rng.uniform(r + 8, size - r - 8, 2)
        y0, y1 = int(cy - r) - 1, int(cy + r) + 2
        x0, x1 = int(cx - r) - 1, int(cx + r) + 2
        if mask[max(y0 - 3, 0) : y1 + 3, max(x0 - 3, 0) : x1 + 3].any():
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        mask[y0:y1, x0:x1] |= d
        if placed % 3 == 0:
            dark[y0:y1, x0:x1] |= d
        placed += 1
    img = rng.poisson(np.where(dark, 12.0, 20.0)).astype(np.uint16)
    return img, mask


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(
        f"{'frame':>10} {'particles':>9} {'core ms':>9} {'plain ms':>9} {'ratio':>7} "
        f"{'core µs/p':>9} {'postprocess ms':>14} {'added':>6}"
    )
    for size in args.sizes:
        n = 500 if size <= 1024 else int(500 * (size / 1024) ** 2)
        img, mask = make_frame(size, n)
        t_pp, pp = best_time(lambda m=mask: postprocess(m, S), args.repeat)
        parts = pp.particles
        t_core, z_core = best_time(lambda i=img, p=parts, m=mask: contrast_z(i, p, m), args.repeat)
        t_plain, z_plain = best_time(lambda i=img, p=parts, m=mask: ref.contrast_z(i, p, m), 1)
        np.testing.assert_allclose(z_core, z_plain, rtol=1e-9, equal_nan=True)
        print(
            f"{size:>5}x{size:<4} {len(parts):>9} {1e3 * t_core:>9.1f} {1e3 * t_plain:>9.1f} "
            f"{t_plain / t_core:>6.0f}x {1e6 * t_core / len(parts):>9.1f} {1e3 * t_pp:>14.1f} "
            f"{t_core / t_pp:>6.0%}"
        )


if __name__ == "__main__":
    main()
