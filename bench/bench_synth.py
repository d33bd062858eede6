"""Benchmark of the synthetic micrograph generator (``antema_fast.synth.generate``).

Prints, per regime and tile size, the median and 90th-percentile time per generated tile
(image + exact instance masks; the touching fraction, computed on first access, is not
included), and the time of one training batch (8 tiles of 192², synthetic only, with the
augmentations of ``antema_fast.train.data.BatchSampler``).

It also compares, in the same run and on the same input, the compiled kernels with the
plain-NumPy / plain-Python way of doing the same work:

- image formation (contrast, fringes, support texture, clip, gradient, gain, shot noise) of
  ``_core.synth_form`` + ``_core.synth_expose`` against the NumPy formulas of
  ``tests/synth_reference.py`` (float64) with NumPy's Poisson sampler, one thread each (the
  optical blur, OpenCV in both, is left out);
- particle placement, ``_core.synth_place`` against the same rejection sampling in Python with
  a grid of placed centres (what the generator did before);

and the two ways of finding the projected area of a unit polyhedron that sizes every particle:
the exact shadow area ½ Σ A_f |n_f·z| (what ``make_particle`` uses) against rasterising the
projected thickness on a 161² grid (the plain-NumPy way the generator used before; it also
truncated rods longer than the grid).

Run: ``nice -n 10 python bench/bench_synth.py [--n 30] [--sizes 192 256 512]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from antema_fast import _core, synth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import synth_reference  # noqa: E402

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


def _median_ms(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def bench_formation(size: int, repeat: int) -> None:
    """Same canvases (a rendered tem / haadf tile), same imaging conditions."""
    print(f"\n| formation {size}² | compiled ms | NumPy ms | ratio |")
    print("|---|---|---|---|")
    for regime in ("tem", "haadf"):
        tc, tn = _formation_case(regime, size, repeat)
        print(f"| {regime} | {tc:.2f} | {tn:.2f} | {tn / tc:.1f}× |")


def _formation_case(regime: str, size: int, repeat: int) -> tuple[float, float]:
    rng = np.random.default_rng(3)
    s = synth.generate(rng, (size, size), regime)
    im = s.imaging
    h, w = s.thickness_nm.shape
    thick = s.thickness_nm
    contrast_w = (thick * 1.05).astype(np.float32)
    lattice = (thick * 0.2).astype(np.float32)
    tex = synth._band_noise_raw(rng, (h, w), 3.0)
    field, mean, sd = synth._smooth_field_raw(rng, (h, w), 4)
    g1 = 0.05 / sd
    g0 = 1.0 - g1 * mean
    abc = (0.5, -0.3, 0.2)
    dose = 200.0

    def compiled() -> None:
        img = _core.synth_form(
            thick,
            contrast_w,
            lattice,
            tex,
            im.style == "haadf",
            im.mu_per_nm,
            im.gamma,
            im.background,
            im.carbon_amplitude,
            0.2,
        )
        _core.synth_expose(img, field, 0.2, *abc, g0, g1, dose, 7, 1)  # one thread, as NumPy

    nrng = np.random.default_rng(0)
    im_l = replace(im, lattice_amplitude=0.2)

    def numpy_way() -> None:
        img = synth_reference.form(thick, contrast_w, lattice, tex, im_l)
        img = synth_reference.expose_noiseless(img, field, 0.2, abc, g0, g1)
        nrng.poisson(img * dose).astype(np.float32)

    return _median_ms(compiled, repeat), _median_ms(numpy_way, repeat)


def python_place(
    diam: np.ndarray,
    groups: list[int],
    h_nm: float,
    w_nm: float,
    margin: float,
    rng: np.random.Generator,
) -> list[tuple[int, float, float]]:
    """The rules of ``_core.synth_place`` in plain Python (grid of placed centres)."""
    cell = 1.05 * float(diam.max()) + margin + 1e-9
    grid: dict[tuple[int, int], list[tuple[float, float, float]]] = {}

    def free(y: float, x: float, r: float) -> bool:
        gy, gx = math.floor(y / cell), math.floor(x / cell)
        for iy in (gy - 1, gy, gy + 1):
            for ix in (gx - 1, gx, gx + 1):
                for cy, cx, cr in grid.get((iy, ix), ()):
                    lim = 1.05 * (r + cr) + margin
                    if (y - cy) ** 2 + (x - cx) ** 2 < lim * lim:
                        return False
        return True

    out: list[tuple[int, float, float]] = []
    first = 0
    for size in groups:
        for _ in range(300):
            r = diam[first] / 2
            y = rng.uniform(-0.3 * r, h_nm + 0.3 * r)
            x = rng.uniform(-0.3 * r, w_nm + 0.3 * r)
            if not free(y, x, r):
                continue
            cand = [(y, x, r)]
            for m in range(1, size):
                rm = diam[first + m] / 2
                for _ in range(30):
                    py, px, pr = cand[int(rng.integers(len(cand)))]
                    dist = rng.uniform(0.55, 0.95) * (pr + rm)
                    ang = rng.uniform(0, 2 * math.pi)
                    yy, xx = py + dist * math.sin(ang), px + dist * math.cos(ang)
                    if free(yy, xx, rm) and all(
                        (yy - cy) ** 2 + (xx - cx) ** 2 >= (0.5 * (rm + cr)) ** 2
                        for cy, cx, cr in cand
                    ):
                        cand.append((yy, xx, rm))
                        break
                else:
                    break
            if len(cand) < size:
                continue
            for m, (yy, xx, rr) in enumerate(cand):
                out.append((first + m, yy, xx))
                grid.setdefault((math.floor(yy / cell), math.floor(xx / cell)), []).append(
                    (yy, xx, rr)
                )
            break
        first += size
    return out


def bench_placement(repeat: int) -> None:
    print("\n| placement | particles asked | placed | compiled ms | Python ms | ratio |")
    print("|---|---|---|---|---|---|")
    for n, field in ((60, 60.0), (400, 100.0), (400, 60.0)):
        _placement_case(n, field, repeat)


def _placement_case(n: int, field: float, repeat: int) -> None:
    rng = np.random.default_rng(n)
    groups = [int(g) for g in rng.choice([1, 1, 1, 2, 3], size=n)]
    while sum(groups) > n:
        groups.pop()
    diam = rng.lognormal(math.log(3.0), 0.3, sum(groups))
    g32 = np.asarray(groups, np.int32)
    placed = len(_core.synth_place(diam, g32, field, field, 0.4, 1)[0])
    tc = _median_ms(lambda: _core.synth_place(diam, g32, field, field, 0.4, 1), repeat)
    tp = _median_ms(
        lambda: python_place(diam, groups, field, field, 0.4, np.random.default_rng(1)),
        repeat,
    )
    print(f"| {field:.0f}² nm² | {sum(groups)} | {placed} | {tc:.3f} | {tp:.2f} | {tp / tc:.0f}× |")


def bench_area(n: int) -> None:
    rng = np.random.default_rng(5)
    print("\n| shape | exact µs | grid µs | grid / exact | max rel. difference |")
    print("|---|---|---|---|---|")
    for shape in ("cube", "octahedron", "truncated_octahedron", "plate", "rod"):
        ps = [synth.make_particle(rng, 0.0, 0.0, 1.0, shape) for _ in range(n)]
        ps = [replace(p, scale_nm=1.0) for p in ps]
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
    bench_formation(256, 30)
    bench_formation(1024, 5)
    bench_placement(10)
    bench_area(200)


if __name__ == "__main__":
    main()
