"""Benchmark of the synthetic micrograph generator (``antema_fast.synth.generate``).

Prints, per regime and tile size, the median and 90th-percentile time per generated tile
(image + exact instance masks; the touching fraction, computed on first access, is not
included), and the time of one training batch (8 tiles of 192², synthetic only, with the
augmentations of ``antema_fast.train.data.BatchSampler``).

It also compares, in the same run, the two ways of finding the projected area of a unit
polyhedron that sizes every particle: the exact hull of the projected vertices (what
``make_particle`` uses) against rasterising the projected thickness on a 161² grid (the
plain-NumPy way the generator used before; it also truncated rods longer than the grid).

Run: ``nice -n 10 python bench/bench_synth.py [--n 30] [--sizes 192 256 512]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from antema_fast import synth

_GRID = np.linspace(-1.0, 1.0, 161)


def grid_area(p: synth.Particle) -> float:
    """The former numeric estimate: count grid points with positive thickness."""
    q = replace(p, y_nm=0.0, x_nm=0.0, scale_nm=1.0)
    yy, xx = np.meshgrid(_GRID, _GRID, indexing="ij")
    step = _GRID[1] - _GRID[0]
    return float((synth._thickness(q, yy, xx) > 0).sum() * step**2)


def bench_tiles(n: int, sizes: list[int]) -> None:
    print("| regime | tile | median ms | p90 ms |")
    print("|---|---|---|---|")
    for size in sizes:
        for regime in synth.REGIMES:
            synth.generate(0, (size, size), regime)  # warm caches
            ts = []
            for k in range(n):
                t0 = time.perf_counter()
                synth.generate(np.random.default_rng([7, k]), (size, size), regime)
                ts.append(time.perf_counter() - t0)
            print(
                f"| {regime} | {size}² | {1e3 * np.median(ts):.1f} "
                f"| {1e3 * np.percentile(ts, 90):.1f} |"
            )


def bench_batch(repeat: int) -> None:
    from antema_fast.train.data import BatchSampler
    from antema_fast.train.loop import DEFAULT_PREPROCESSING

    bs = BatchSampler(DEFAULT_PREPROCESSING, tile=192)
    bs.batch(0, 8)
    t0 = time.perf_counter()
    for step in range(1, repeat + 1):
        bs.batch(step, 8)
    per = (time.perf_counter() - t0) / repeat
    print(f"\ntraining batch (8 × 192², synthetic): {per * 1e3:.0f} ms")


def bench_area(n: int) -> None:
    rng = np.random.default_rng(5)
    print("\n| shape | exact µs | grid µs | grid / exact | max rel. difference |")
    print("|---|---|---|---|---|")
    for shape in ("cube", "octahedron", "truncated_octahedron", "plate", "rod"):
        ps = [synth.make_particle(rng, 0.0, 0.0, 1.0, shape) for _ in range(n)]
        ps = [replace(p, scale_nm=1.0) for p in ps]
        synth._polyhedron_vertices.cache_clear()
        t0 = time.perf_counter()
        exact = [synth.projected_area_unit(p) for p in ps]
        te = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        grid = [grid_area(p) for p in ps]
        tg = (time.perf_counter() - t0) / n
        diff = max(abs(g / e - 1.0) for g, e in zip(grid, exact, strict=True))
        print(f"| {shape} | {te * 1e6:.0f} | {tg * 1e6:.0f} | {tg / te:.0f}× | {diff:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30, help="tiles per regime and size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 256, 512])
    ap.add_argument("--batches", type=int, default=10)
    args = ap.parse_args()
    bench_tiles(args.n, args.sizes)
    bench_batch(args.batches)
    bench_area(200)


if __name__ == "__main__":
    main()
