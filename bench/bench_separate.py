"""Benchmark of the mask → particle table step: C++ UECS path vs the plain-Python reference.

Masks of 1024² with 500 particles and 4096² with ~8000, of which about 20 % sit in
overlapping pairs and triplets (centre distances 1.6–1.9 R, so that the convexity gate sends
them to separation), the rest isolated discs and ellipses; radii 6–14 px; 0.1 nm/px. Both
implementations run single-threaded in the same process on the same mask:

* ``core``: ``antema_fast._core.postprocess_frame`` — despeckle, gate, UECS, cleaning (C++);
* ``postprocess``: ``antema_fast.postprocess`` — the same plus measuring the whole table;
* ``reference``: ``tests/uecs_reference.postprocess`` — SPEC steps 4–7 in NumPy / SciPy /
  scikit-image (the test oracle).

Before any timing is printed the benchmark asserts that both give the same particle count and
per-particle areas within 1 px. It then prints ms per frame and the ratios.

``--pairs`` prints, for discs of radius 10–40 px, the centre distance (in R) from which a
touching pair comes out as two particles, at convexity thresholds 0.95 and 0.98.

Run: ``nice -n 10 python bench/bench_separate.py [--sizes 1024 4096] [--repeat 3] [--pairs]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import antema_fast as af  # noqa: E402
import uecs_reference as ref  # noqa: E402
from antema_fast import _core  # noqa: E402

S = 0.1


def _group(rng: np.random.Generator, members: int) -> tuple[np.ndarray, int]:
    """One isolated particle (disc or ellipse of aspect up to 2) or a pair / triplet of
    overlapping discs (centre distances 1.6-1.9 R), as a padded bitmap."""
    radius = rng.uniform(6.0, 12.0)
    centres = [(0.0, 0.0)]
    ang = rng.uniform(0, 2 * math.pi)
    for _ in range(members - 1):
        d = rng.uniform(1.6, 1.9) * radius
        ang += rng.uniform(-1.0, 1.0)
        centres.append((centres[-1][0] + d * math.sin(ang), centres[-1][1] + d * math.cos(ang)))
    cy = np.mean([c[0] for c in centres])
    cx = np.mean([c[1] for c in centres])
    n = int(math.ceil(radius * (2 * members + 1))) // 2 + 3
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1].astype(float)
    yy += cy + rng.uniform(0, 1)
    xx += cx + rng.uniform(0, 1)
    blob = np.zeros(yy.shape, bool)
    for py, px in centres:
        if members == 1 and rng.random() < 0.4:
            a, b, t = radius, radius * rng.uniform(0.5, 1.0), rng.uniform(0, math.pi)
            u = (xx - px) * math.cos(t) + (yy - py) * math.sin(t)
            v = -(xx - px) * math.sin(t) + (yy - py) * math.cos(t)
            blob |= (u / a) ** 2 + (v / b) ** 2 <= 1.0
        else:
            blob |= (yy - py) ** 2 + (xx - px) ** 2 <= radius**2
    return blob, n


def make_mask(size: int, n_particles: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """``n_particles`` particles, about 20 % of them in overlapping pairs and triplets, placed
    at random without touching one another (2 px apart at least) or the image border.

    Returns the mask and the number of particles drawn (each member of a group counts).
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), dtype=bool)
    taken = np.zeros((size, size), dtype=bool)
    drawn = grouped = 0
    attempts = 0
    while drawn < n_particles and attempts < 50 * n_particles:
        attempts += 1
        members = 1
        if grouped < 0.2 * n_particles and rng.random() < 0.25:
            members = int(rng.choice([2, 3]))
        members = min(members, n_particles - drawn)
        blob, n = _group(rng, members)
        r0, c0 = (int(v) for v in rng.integers(n + 2, size - n - 2, size=2))
        sl = np.s_[r0 - n : r0 + n + 1, c0 - n : c0 + n + 1]
        if (taken[sl] & blob).any():
            continue
        mask[sl] |= blob
        grown = np.zeros((2 * n + 1, 2 * n + 1), bool)
        grown[:] = blob
        for _ in range(2):  # keep 2 px of background around every particle
            g = grown.copy()
            g[1:] |= grown[:-1]
            g[:-1] |= grown[1:]
            g[:, 1:] |= grown[:, :-1]
            g[:, :-1] |= grown[:, 1:]
            grown = g
        taken[sl] |= grown
        drawn += members
        grouped += members if members > 1 else 0
    return mask, drawn


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best process CPU time and best wall time of ``repeat`` calls, and the last result.

    Everything here is single-threaded, so CPU time is the single-core cost even on a loaded
    machine, where wall time also counts waiting for a core.
    """
    best_cpu = best_wall = math.inf
    out = None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - t0)
    return best_cpu, best_wall, out


def core_call(mask: np.ndarray) -> dict[str, Any]:
    st = af.Settings()
    m = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)  # as postprocess: no copy
    return _core.postprocess_frame(
        m,
        "uecs",
        st.convexity_threshold,
        st.min_convexity,
        st.max_holes,
        st.min_area_px(S),
        st.min_marker_area(S),
    )


def check_same(mask: np.ndarray, expected: ref.ReferenceResult) -> int:
    """Same count; each reference particle matches the core particle of nearest centroid, whose
    area is within 1 px."""
    got = af.postprocess(mask, S)
    assert len(expected.particles) == len(got.table), (
        f"reference {len(expected.particles)} particles, core {len(got.table)}"
    )
    cy = got.table.centroid_y_px.to_numpy()
    cx = got.table.centroid_x_px.to_numpy()
    area = got.table.area_px.to_numpy()
    used = np.zeros(len(cy), bool)
    for r0, c0, b, _ in expected.particles:
        rr, cc = np.nonzero(b)
        d = (cy - (rr.mean() + r0)) ** 2 + (cx - (cc.mean() + c0)) ** 2
        d[used] = np.inf
        j = int(np.argmin(d))
        used[j] = True
        assert abs(int(area[j]) - int(b.sum())) <= 1, "per-particle areas differ by more than 1 px"
    return len(cy)


def bench_frames(sizes: list[int], repeat: int) -> None:
    print(
        "| frame | particles drawn | areas | particles out | core ms (wall) "
        "| postprocess ms (wall) | reference ms | reference / core | reference / postprocess |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        n = 500 if size == 1024 else int(round(8000 * (size / 4096) ** 2))
        mask, drawn = make_mask(size, n, seed=size)
        t_ref, _, expected = best_time(lambda m=mask: ref.postprocess(m, S), 1)
        n_out = check_same(mask, expected)
        best_time(lambda m=mask: core_call(m), 1)  # warm-up
        t_core, w_core, d = best_time(lambda m=mask: core_call(m), repeat)
        t_pp, w_pp, _ = best_time(lambda m=mask: af.postprocess(m, S), repeat)
        print(
            f"| {size}² | {drawn} | {int(d['n_areas'])} | {n_out} "
            f"| {t_core * 1e3:.1f} ({w_core * 1e3:.1f}) | {t_pp * 1e3:.1f} ({w_pp * 1e3:.1f}) "
            f"| {t_ref * 1e3:.0f} | {t_ref / t_core:.0f}x | {t_ref / t_pp:.0f}x |",
            flush=True,
        )


def pair_mask(radius: float, f: float) -> np.ndarray:
    d = f * radius
    n = int(2 * radius + d + 20)
    yy, xx = np.mgrid[:n, :n]
    c = n / 2
    return ((yy - c) ** 2 + (xx - c + d / 2) ** 2 <= radius**2) | (
        (yy - c) ** 2 + (xx - c - d / 2) ** 2 <= radius**2
    )


def bench_pairs() -> None:
    fs = np.round(np.arange(1.0, 1.96, 0.05), 2)
    print(
        "| R (px) | threshold | gate sends to separation from | two particles from "
        "| dropped (regrown non-convex) at |"
    )
    print("|---|---|---|---|---|")
    for radius in (10, 15, 20, 30, 40):
        for t in (0.95, 0.98):
            gate, split, dropped = None, None, []
            for f in fs:
                m = pair_mask(radius, float(f))
                conv = _core.convex_stats(m.astype(np.uint8))["convexity"]
                r = af.postprocess(m, S, convexity_threshold=t)
                if conv <= t and gate is None:
                    gate = f
                if len(r.particles) == 2 and split is None:
                    split = f
                if conv <= t and len(r.particles) < 2:
                    dropped.append(f"{f:.2f}")
            print(f"| {radius} | {t} | {gate} R | {split} R | {', '.join(dropped) or '-'} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--pairs", action="store_true", help="also print the pair separation table")
    a = p.parse_args()
    bench_frames(a.sizes, a.repeat)
    if a.pairs:
        bench_pairs()


if __name__ == "__main__":
    main()
