"""Plain-NumPy references of the generator's compiled kernels, kept here as test oracles:
the particle rasterisation (the loop ``antema_fast.synth.render`` hands to
``_core.synth_rasterize``; same formulas as ``synth._thickness``, same accumulation order), the
image formation of ``_core.synth_form`` / ``_core.synth_expose`` and the placement rules of
``_core.synth_place``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import permutations

import numpy as np
from antema_fast import synth


def rasterize(
    particles: Sequence[synth.Particle],
    shape: tuple[int, int],
    s: float,
    fringes: bool,
    haadf: bool,
) -> tuple[dict[str, np.ndarray], list[tuple[int, tuple[int, int, int, int], np.ndarray]]]:
    """Canvases (thick, best, labels, count, lattice, contrast_w) and, per kept particle,
    (input index, tight bbox, mask)."""
    h, w = shape
    cv = {
        "thick": np.zeros((h, w), np.float32),
        "best": np.zeros((h, w), np.float32),
        "labels": np.zeros((h, w), np.int32),
        "count": np.zeros((h, w), np.uint8),
        "lattice": np.zeros((h, w), np.float32),
        "contrast_w": np.zeros((h, w), np.float32),
    }
    kept: list[tuple[int, tuple[int, int, int, int], np.ndarray]] = []
    for i, p in enumerate(particles):
        ext = synth._extent(p) / s
        cy, cx = p.y_nm / s, p.x_nm / s
        r0, r1 = max(int(math.floor(cy - ext)), 0), min(int(math.ceil(cy + ext)), h - 1)
        c0, c1 = max(int(math.floor(cx - ext)), 0), min(int(math.ceil(cx + ext)), w - 1)
        if r0 > r1 or c0 > c1:
            continue
        yy = (np.arange(r0, r1 + 1, dtype=np.float64) * s)[:, None]
        xx = (np.arange(c0, c1 + 1, dtype=np.float64) * s)[None, :]
        yy, xx = np.broadcast_arrays(yy, xx)
        t = synth._thickness(p, yy, xx).astype(np.float32)
        m = t > 0
        if not m.any():
            continue
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        rr0, rr1, cc0, cc1 = rows[0], rows[-1], cols[0], cols[-1]
        k = len(kept) + 1
        sl = (slice(r0, r1 + 1), slice(c0, c1 + 1))
        cv["thick"][sl] += t
        cv["count"][sl] += m
        win = t > cv["best"][sl]
        np.copyto(cv["best"][sl], t, where=win)
        np.copyto(cv["labels"][sl], k, where=win)
        cv["contrast_w"][sl] += t * np.float32(p.contrast)
        if fringes:
            ca, sa = math.cos(p.lattice_angle_rad), math.sin(p.lattice_angle_rad)
            kk = 2.0 * math.pi / p.lattice_spacing_nm
            ph = kk * ((xx - p.x_nm) * ca + (yy - p.y_nm) * sa) + p.lattice_phase
            fr = np.cos(ph)
            if haadf:
                ph2 = kk * (-(xx - p.x_nm) * sa + (yy - p.y_nm) * ca) + p.lattice_phase
                fr = 0.25 * (1 + np.cos(ph)) * (1 + np.cos(ph2)) * 2.0 - 0.5
            cv["lattice"][sl] += (t * fr).astype(np.float32)
        bbox = (r0 + int(rr0), c0 + int(cc0), r0 + int(rr1), c0 + int(cc1))
        kept.append((i, bbox, m[rr0 : rr1 + 1, cc0 : cc1 + 1].copy()))
    return cv, kept


def form(
    thick: np.ndarray,
    contrast_w: np.ndarray,
    lattice: np.ndarray,
    tex: np.ndarray,
    imaging: synth.Imaging,
    film: np.ndarray | None = None,
) -> np.ndarray:
    """The noiseless, unblurred image (what ``_core.synth_form`` computes), in float64.
    ``film``: the support film's cover (1 film, 0 hole at ``imaging.vacuum_level``)."""
    t = tex.astype(np.float64)
    sd = float(t.std())
    t = t / sd if sd > 0 else t
    thick64 = thick.astype(np.float64)
    eff = np.where(thick64 > 0, contrast_w.astype(np.float64), 0.0)
    rel = lattice.astype(np.float64) / np.maximum(thick64, 1e-6)
    la = imaging.lattice_amplitude
    m = np.ones_like(t) if film is None else film.astype(np.float64)
    v = imaging.vacuum_level
    support = imaging.background * (v + (1.0 - v) * m + imaging.carbon_amplitude * t * m)
    if imaging.style == "bf":
        sig = np.exp(-imaging.mu_per_nm * eff) * (1.0 + la * rel * (1.0 - np.exp(-thick64 / 2)))
        return support * sig
    sig = imaging.mu_per_nm * np.power(np.maximum(eff, 0.0), imaging.gamma) * (1.0 + la * rel)
    return support + sig


def expose_noiseless(
    img: np.ndarray,
    gain_field: np.ndarray | None,
    gradient: float,
    abc: tuple[float, float, float],
    gain0: float,
    gain1: float,
) -> np.ndarray:
    """Clip, gradient and gain of ``_core.synth_expose`` without noise, in float64."""
    h, w = img.shape
    out = np.maximum(img.astype(np.float64), 0.0)
    if gradient > 0:
        gy = np.linspace(-1, 1, h)[:, None]
        gx = np.linspace(-1, 1, w)[None, :]
        a, b, c = abc
        out *= np.maximum(1.0 + gradient * (a * gx + b * gy + 0.5 * c * (gx * gx + gy * gy)), 0.05)
    if gain_field is not None:
        out *= np.maximum(gain0 + gain1 * gain_field.astype(np.float64), 0.05)
    return out


def placement_violations(
    diam: np.ndarray,
    groups: Sequence[int],
    member: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    margin: float,
    kinds: Sequence[int] | None = None,
) -> list[str]:
    """Every broken rule of ``_core.synth_place`` (see cpp/include/antema/synth_place.hpp):
    particles of different groups at least 1.05 (r_a + r_b) + margin apart; members of a
    cluster (kind 0) at least 0.5 (r_a + r_b) apart, each after the first at 0.55–0.95
    (r_p + r) from an earlier member, the cluster placed whole; members of an aggregate (kind 1)
    at least 0.75 (r_a + r_b) apart, each after the first at 0.80–0.98 (r_p + r) from an
    earlier member, any subset of the aggregate starting with its first member; a group's
    members consecutive and in order."""
    kinds = [0] * len(groups) if kinds is None else list(kinds)
    starts = np.concatenate([[0], np.cumsum(groups)])
    group_of = np.searchsorted(starts, np.arange(len(diam)), side="right") - 1
    r = diam[member] / 2.0
    g = group_of[member]
    bad: list[str] = []
    for gi in np.unique(g):
        idx = np.flatnonzero(g == gi)
        got = member[idx].tolist()
        want = list(range(starts[gi], starts[gi + 1]))
        if np.any(np.diff(idx) != 1):
            bad.append(f"group {gi}: members not consecutive in the output")
        if kinds[gi] == 0 and got != want:
            bad.append(f"cluster {gi}: members {got}, expected {want}")
        if kinds[gi] == 1 and (got[0] != want[0] or got != sorted(set(got) & set(want))):
            bad.append(f"aggregate {gi}: members {got} not an ordered subset starting at {want[0]}")
    n = len(member)
    for i in range(n):
        agg = kinds[g[i]] == 1
        sep, lo, hi = (0.75, 0.80, 0.98) if agg else (0.5, 0.55, 0.95)
        for j in range(i):
            d = math.hypot(ys[i] - ys[j], xs[i] - xs[j])
            if g[i] != g[j]:
                if d < 1.05 * (r[i] + r[j]) + margin - 1e-9:
                    bad.append(f"particles {i}, {j} (different groups) {d:.3f} apart")
            elif d < sep * (r[i] + r[j]) - 1e-9:
                bad.append(f"particles {i}, {j} (same group) {d:.3f} apart")
        earlier = [j for j in range(i) if g[j] == g[i]]
        if earlier and not any(
            lo * (r[i] + r[j]) - 1e-9
            <= math.hypot(ys[i] - ys[j], xs[i] - xs[j])
            <= hi * (r[i] + r[j]) + 1e-9
            for j in earlier
        ):
            bad.append(f"particle {i} not attached to an earlier member of its group")
    return bad


def polyhedron_vertices(shape: str, aspect: float) -> np.ndarray:
    """Vertices (V, 3) of the polyhedron of ``synth._halfspaces`` (unit size).

    cube: (±½, ±½, ±½); octahedron: permutations of (±½, 0, 0); truncated octahedron
    (|x| + |y| + |z| ≤ ½ cut by |x|, |y|, |z| ≤ t with ¼ ≤ t < ½): permutations of
    (±t, ±(½ − t), 0); plate: the triangle's corners (circumradius 1/√3, opposite the side
    normals at 90°, 210°, 330°) at z = ±1/(2·aspect).
    """
    if shape == "cube":
        return np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    if shape == "octahedron":
        return np.vstack([np.eye(3) * 0.5, -np.eye(3) * 0.5])
    if shape == "truncated_octahedron":
        t = float(synth._halfspaces(shape, aspect)[1][-1])
        signed = [(a, b) for a in (-t, t) for b in (t - 0.5, 0.5 - t)]
        return np.array(sorted({p for a, b in signed for p in permutations((a, b, 0.0))}))
    if shape == "plate":
        ang = np.radians([270.0, 30.0, 150.0])
        rc = 1.0 / math.sqrt(3.0)
        tz = 0.5 / aspect
        return np.array([[rc * math.cos(a), rc * math.sin(a), z] for z in (-tz, tz) for a in ang])
    raise ValueError(f"not a polyhedron: {shape!r}")


def projected_area_hull(p: synth.Particle) -> float:
    """Projected area at unit size of a polyhedral particle: the area of the convex hull of
    its rotated vertices projected on the image plane (an independent route to the shadow
    formula of ``synth._area_unit``)."""
    import cv2

    rot = np.asarray(p.rotation, dtype=np.float64).reshape(3, 3)
    v = polyhedron_vertices(p.shape, p.aspect) @ rot.T
    hull = cv2.convexHull(np.ascontiguousarray(v[:, :2], dtype=np.float32))
    return float(cv2.contourArea(hull))
