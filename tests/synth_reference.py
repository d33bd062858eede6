"""Plain-NumPy reference of the generator's particle rasterisation (the loop that
``antema_fast.synth.render`` hands to the C++ kernel ``_core.synth_rasterize``), kept here as
the test oracle: same formulas (``synth._thickness``), same accumulation order."""

from __future__ import annotations

import math
from collections.abc import Sequence

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
