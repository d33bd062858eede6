"""What inference-time variants buy: particle IoU against network passes, on synthetic fields.

Every variant segments the same fields (``antema_fast.train.data.synthetic_set``) with the
shipped model through ``OnnxSegmenter`` and thresholds at the model's stored threshold:

* ``single``: one pass at native scale (what ``antema analyze`` does by default);
* ``mirror``: the mean probability of the field as is and mirrored left-right (what
  ``Settings.flip_views = 2`` does);
* ``scale S``: the mean of the native pass and one pass over the field resized by ``S``
  (cubic up, area down), its probability resized back (area down, linear up);
* ``mirror+scale 1.5``: the three passes together;
* ``refine``: the native pass with its boundary band (pixels within 1 px of the mask's edge)
  decided again by ``logit(p) + λ·LLR``, where LLR is the Gaussian log-likelihood ratio of the
  pixel's smoothed intensity (σ = 0.7 px) between the particle's core (≥ 2 px inside) and a ring
  2–5 px around it, with the ring's variance: a classical local-contrast edge refinement
  (λ = 0.1; larger λ is worse).

It prints, per variant, the pooled particle IoU per regime and in all, the difference from
``single`` and the network passes (pixels relative to one native pass) and seconds per field.
The fields use seeds disjoint from training, validation (777) and test (12345).

Run: ``nice -n 10 python bench/bench_views.py [--seed 31313] [--per-regime 30] [--tile 256]``
(about 2 min on 2 cores for 150 fields of 256²). Needs scipy only for ``refine``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cv2
import numpy as np
from antema_fast.segment._models import resolve_model_path
from antema_fast.train.data import synthetic_set
from antema_fast.train.evaluate import OnnxSegmenter

Pass = Callable[[OnnxSegmenter, np.ndarray], np.ndarray]


def _resized_pass(seg: OnnxSegmenter, img: np.ndarray, s: float) -> np.ndarray:
    h, w = img.shape
    up_interp = cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA
    up = cv2.resize(img, (round(w * s), round(h * s)), interpolation=up_interp)
    p = seg.probability(up)
    return cv2.resize(p, (w, h), interpolation=cv2.INTER_AREA if s > 1 else cv2.INTER_LINEAR)


def _mirror(seg: OnnxSegmenter, img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(seg.probability(np.ascontiguousarray(img[:, ::-1]))[:, ::-1])


def refine_boundary(
    img: np.ndarray, p: np.ndarray, thr: float, lam: float = 0.1, sigma: float = 0.7
) -> np.ndarray:
    """The ``refine`` variant: the mask ``p >= thr`` with its boundary band decided again."""
    from scipy import ndimage as ndi

    m = (p >= thr).astype(np.uint8)
    if not m.any():
        return m.astype(bool)
    g = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)
    n, lab = cv2.connectedComponents(m, connectivity=8)
    d_out, (iy, ix) = ndi.distance_transform_cdt(1 - m, metric="chessboard", return_indices=True)
    d_in = ndi.distance_transform_cdt(m, metric="chessboard")
    comp = np.where(m == 1, lab, lab[iy, ix])

    def stats(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c, v = comp[sel], g[sel].astype(np.float64)
        return (np.bincount(c, minlength=n), np.bincount(c, v, n), np.bincount(c, v * v, n))

    ci, si, _ = stats((m == 1) & (d_in >= 3))
    ca, sa, _ = stats(m == 1)
    co, so, qo = stats((m == 0) & (d_out >= 2) & (d_out <= 5))
    mu_in = np.where(ci >= 4, si / np.maximum(ci, 1), sa / np.maximum(ca, 1))
    mu_out = so / np.maximum(co, 1)
    var_out = np.maximum(qo / np.maximum(co, 1) - mu_out**2, 1e-12)
    band = (((m == 1) & (d_in <= 1)) | ((m == 0) & (d_out <= 1))) & (co >= 8)[comp]
    gb, cb = g[band].astype(np.float64), comp[band]
    llr = ((gb - mu_out[cb]) ** 2 - (gb - mu_in[cb]) ** 2) / (2 * var_out[cb])
    pb = np.clip(p[band].astype(np.float64), 1e-4, 1 - 1e-4)
    out = m.astype(bool)
    out[band] = np.log(pb / (1 - pb)) - np.log(thr / (1 - thr)) + lam * llr > 0
    return out


def variants(thr: float) -> dict[str, tuple[float, Pass]]:
    """Name → (passes relative to one native pass, function giving the mask)."""

    def mean_of(*fs: Pass) -> Pass:
        return lambda seg, img: sum(f(seg, img) for f in fs) / len(fs) > thr

    def native(seg: OnnxSegmenter, img: np.ndarray) -> np.ndarray:
        return seg.probability(img)

    def scaled(s: float) -> Pass:
        return lambda seg, img: _resized_pass(seg, img, s)

    return {
        "single": (1.0, mean_of(native)),
        "mirror": (2.0, mean_of(native, _mirror)),
        "scale 0.75": (1.5625, mean_of(native, scaled(0.75))),
        "scale 1.25": (2.5625, mean_of(native, scaled(1.25))),
        "scale 1.5": (3.25, mean_of(native, scaled(1.5))),
        "mirror+scale 1.5": (4.25, mean_of(native, _mirror, scaled(1.5))),
        "refine": (1.0, lambda seg, img: refine_boundary(img, seg.probability(img), thr)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="antema-unet")
    ap.add_argument("--seed", type=int, default=31313)
    ap.add_argument("--per-regime", type=int, default=30)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    seg = OnnxSegmenter(str(resolve_model_path(args.model)), threads=args.threads)
    thr = float(seg.threshold)
    fields = synthetic_set(args.per_regime, args.tile, args.seed)
    regimes = list(dict.fromkeys(r for r, _ in fields))
    table = variants(thr)
    counts = {v: {r: np.zeros(2) for r in regimes} for v in table}
    seconds = dict.fromkeys(table, 0.0)
    for r, s in fields:
        truth = s.semantic.astype(bool)
        for name, (_, f) in table.items():
            t0 = time.perf_counter()
            pred = f(seg, s.image)
            seconds[name] += time.perf_counter() - t0
            counts[name][r] += (np.count_nonzero(pred & truth), np.count_nonzero(pred | truth))

    def iou(c: np.ndarray) -> float:
        return float(c[0] / c[1])

    base = sum(counts["single"].values())
    print(
        f"{len(fields)} fields of {args.tile}² (seed {args.seed}), threshold {thr:.2f}; "
        "pooled particle IoU"
    )
    head = "".join(f"{r[:10]:>11}" for r in regimes)
    print(f"{'variant':18}{head}        all  vs single  passes  s/field")
    for name, (passes, _) in table.items():
        tot = sum(counts[name].values())
        print(
            f"{name:18}"
            + "".join(f"{iou(counts[name][r]):11.4f}" for r in regimes)
            + f"{iou(tot):11.4f}{iou(tot) - iou(base):+11.4f}{passes:8.2f}"
            + f"{seconds[name] / len(fields):9.3f}"
        )


if __name__ == "__main__":
    main()
