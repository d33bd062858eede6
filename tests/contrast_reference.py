"""Plain NumPy/OpenCV statement of ``antema_fast.separate.contrast_z``'s definition, one
particle at a time on its padded crop: the oracle of the C++ core's version
(tests/test_contrast.py) and the competitor in bench/bench_contrast.py."""

from __future__ import annotations

import math

import cv2
import numpy as np


def contrast_z(img, particles, seg=None, ign=None, ring_px=5, gap_px=1, min_ring=8):
    """z per particle: |mean inside − mean ring| / (SD ring · √(1/n_in + 1/n_ring)), the ring
    being the pixels at chessboard distance in (gap_px, gap_px + ring_px] outside ``seg`` and
    ``ign``; NaN below ``min_ring`` ring pixels, inf / 0 for a flat ring."""
    k = gap_px + ring_px
    rows, cols = img.shape
    out = []
    for p in particles:
        h, w = p.bitmap.shape
        r0, c0 = max(p.row0 - k, 0), max(p.col0 - k, 0)
        r1, c1 = min(p.row0 + h + k, rows), min(p.col0 + w + k, cols)
        own = np.zeros((r1 - r0, c1 - c0), np.uint8)
        own[p.row0 - r0 : p.row0 - r0 + h, p.col0 - c0 : p.col0 - c0 + w] = p.bitmap
        outer = cv2.dilate(own, np.ones((2 * k + 1, 2 * k + 1), np.uint8)).astype(bool)
        inner = cv2.dilate(own, np.ones((2 * gap_px + 1, 2 * gap_px + 1), np.uint8)).astype(bool)
        ring = outer & ~inner
        if seg is not None:
            ring &= ~seg[r0:r1, c0:c1]
        if ign is not None:
            ring &= ~ign[r0:r1, c0:c1]
        if ring.sum() < min_ring:
            out.append(np.nan)
            continue
        crop = img[r0:r1, c0:c1].astype(np.float64)
        a, b = crop[own.astype(bool)], crop[ring]
        diff, sd = abs(a.mean() - b.mean()), b.std()
        if sd > 0:
            out.append(diff / (sd * math.sqrt(1 / a.size + 1 / b.size)))
        else:
            out.append(math.inf if diff > 0 else 0.0)
    return np.array(out, np.float64)
