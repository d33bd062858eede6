"""Segmentation quality metrics (SPEC section 5), torch-free.

Semantic metrics follow the paper's Table 1 / Fig. 8: global accuracy, class accuracy, IoU and
Dice per class (background, particle) and the row-normalised confusion matrix. Instance metrics
go beyond the paper: predicted and true particles match one-to-one at IoU ≥ 0.5; precision,
recall, F1, and the relative errors of the mean equivalent diameter and of the count.

Examples
--------
>>> import numpy as np
>>> t = np.zeros((8, 8), bool); t[2:6, 2:6] = True
>>> m = semantic_metrics(t, t)
>>> m["iou"], m["global_accuracy"]
([1.0, 1.0], 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

CLASSES = ("background", "particle")


def confusion_counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """2 × 2 pixel counts ``C[true, pred]`` (0 = background, 1 = particle).

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    p = np.asarray(pred).astype(bool, copy=False)
    t = np.asarray(truth).astype(bool, copy=False)
    if p.shape != t.shape:
        raise ValueError(f"pred and truth: expected equal shapes, got {p.shape} and {t.shape}")
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    tn = int(p.size) - tp - fp - fn
    return np.array([[tn, fp], [fn, tp]], dtype=np.int64)


def _div(a: float, b: float, empty: float = 1.0) -> float:
    """a / b, with ``empty`` when both are zero (nothing to get wrong)."""
    if b == 0:
        return empty if a == 0 else math.nan
    return a / b


def metrics_from_confusion(counts: np.ndarray) -> dict[str, object]:
    """Paper metrics from accumulated 2 × 2 counts ``C[true, pred]``.

    Returns a dict with ``global_accuracy``; per class (lists ordered as :data:`CLASSES`)
    ``class_accuracy`` (recall, TP/(TP+FN)), ``iou`` (TP/(TP+FP+FN)), ``dice`` (2TP/(2TP+FP+FN));
    ``confusion`` (rows: true class, normalised to sum 1); ``pixels``. A class absent from both
    prediction and truth scores 1.0.
    """
    c = np.asarray(counts, dtype=np.int64)
    if c.shape != (2, 2):
        raise ValueError(f"counts: expected shape (2, 2), got {c.shape}")
    total = int(c.sum())
    out: dict[str, object] = {"global_accuracy": _div(float(c[0, 0] + c[1, 1]), float(total))}
    acc, iou, dice = [], [], []
    for k in range(2):
        tp = float(c[k, k])
        fn = float(c[k].sum() - c[k, k])
        fp = float(c[:, k].sum() - c[k, k])
        acc.append(_div(tp, tp + fn))
        iou.append(_div(tp, tp + fp + fn))
        dice.append(_div(2 * tp, 2 * tp + fp + fn))
    out["class_accuracy"] = acc
    out["iou"] = iou
    out["dice"] = dice
    rows = c.sum(axis=1, keepdims=True).astype(np.float64)
    norm = np.divide(c, rows, out=np.zeros((2, 2)), where=rows > 0)
    out["confusion"] = norm.tolist()
    out["pixels"] = total
    return out


def semantic_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, object]:
    """Paper metrics of one binary prediction against the truth.

    See :func:`metrics_from_confusion` for the keys.
    """
    return metrics_from_confusion(confusion_counts(pred, truth))


# ----------------------------------------------------------------------------------------------
# Instances
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Inst:
    r0: int
    c0: int
    mask: np.ndarray  # bool crop

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def _from_label_image(labels: np.ndarray) -> list[_Inst]:
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"label image: expected 2-D, got shape {lab.shape}")
    r, c = np.nonzero(lab)
    if r.size == 0:
        return []
    v = lab[r, c].astype(np.int64)
    ids, inv = np.unique(v, return_inverse=True)
    n = ids.size
    rmin = np.full(n, np.iinfo(np.int64).max)
    cmin = np.full(n, np.iinfo(np.int64).max)
    rmax = np.full(n, -1)
    cmax = np.full(n, -1)
    np.minimum.at(rmin, inv, r)
    np.minimum.at(cmin, inv, c)
    np.maximum.at(rmax, inv, r)
    np.maximum.at(cmax, inv, c)
    out = []
    for k in range(n):
        crop = lab[rmin[k] : rmax[k] + 1, cmin[k] : cmax[k] + 1] == ids[k]
        out.append(_Inst(int(rmin[k]), int(cmin[k]), crop))
    return out


def _instances(x: object) -> list[_Inst]:
    """Accept a label image, a (K, H, W) bool stack, or objects with ``bbox`` + ``mask`` (or
    ``bitmap``, as :class:`antema_fast.measure.Particle` has)."""
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            return _from_label_image(x)
        if x.ndim == 3:
            out = []
            for m in x.astype(bool):
                rows = np.flatnonzero(m.any(axis=1))
                if rows.size == 0:
                    continue
                cols = np.flatnonzero(m.any(axis=0))
                out.append(
                    _Inst(
                        int(rows[0]),
                        int(cols[0]),
                        m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1],
                    )
                )
            return out
        raise ValueError(f"instances: expected a 2-D label image or 3-D stack, got {x.shape}")
    out = []
    for it in x:  # type: ignore[attr-defined]
        bbox = it.bbox
        crop = it.mask if hasattr(it, "mask") else it.bitmap  # measure.Particle: bitmap
        out.append(_Inst(int(bbox[0]), int(bbox[1]), np.asarray(crop, dtype=bool)))
    return out


def _iou(a: _Inst, b: _Inst) -> float:
    ah, aw = a.mask.shape
    bh, bw = b.mask.shape
    r0, r1 = max(a.r0, b.r0), min(a.r0 + ah, b.r0 + bh)
    c0, c1 = max(a.c0, b.c0), min(a.c0 + aw, b.c0 + bw)
    if r0 >= r1 or c0 >= c1:
        return 0.0
    ia = a.mask[r0 - a.r0 : r1 - a.r0, c0 - a.c0 : c1 - a.c0]
    ib = b.mask[r0 - b.r0 : r1 - b.r0, c0 - b.c0 : c1 - b.c0]
    inter = int(np.count_nonzero(ia & ib))
    if inter == 0:
        return 0.0
    return inter / (a.area + b.area - inter)


def match_instances(
    pred: object, truth: object, iou_threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(pred_index, true_index, iou)`` with IoU ≥ ``iou_threshold``.

    Pairs are taken greedily by decreasing IoU (for thresholds ≥ 0.5 on non-overlapping
    instances the matching is unique, so greedy equals optimal).
    """
    p, t = _instances(pred), _instances(truth)
    return _match(p, t, iou_threshold)


def _match(p: Sequence[_Inst], t: Sequence[_Inst], thr: float) -> list[tuple[int, int, float]]:
    pairs = []
    for i, a in enumerate(p):
        for j, b in enumerate(t):
            v = _iou(a, b)
            if v >= thr and v > 0:
                pairs.append((v, i, j))
    pairs.sort(key=lambda q: (-q[0], q[1], q[2]))
    used_p: set[int] = set()
    used_t: set[int] = set()
    out = []
    for v, i, j in pairs:
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        out.append((i, j, v))
    return out


def instance_metrics(
    pred: object,
    truth: object,
    pixel_size_nm: float = 1.0,
    iou_threshold: float = 0.5,
) -> dict[str, float]:
    """Instance metrics of SPEC section 5.

    Parameters
    ----------
    pred, truth
        Each a 2-D label image (0 = background), a ``(K, H, W)`` bool stack (instances may
        overlap), or a sequence of objects with ``bbox`` (row_min, col_min, …) and ``mask``
        crops (e.g. :class:`antema_fast.synth.Instance`).
    pixel_size_nm : float
        For the diameters (nm); 1.0 gives pixels.
    iou_threshold : float
        Matching threshold (SPEC: 0.5).

    Returns
    -------
    dict
        ``n_pred``, ``n_true``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1``,
        ``mean_diameter_pred``, ``mean_diameter_true`` (equivalent diameters over *all* instances
        of each side), ``mean_diameter_rel_error`` (pred/true − 1), ``count_rel_error``
        (n_pred/n_true − 1), ``mean_matched_iou``. Empty prediction and truth → precision, recall
        and F1 of 1.0; an empty side otherwise gives 0 or NaN as the formulas say.
    """
    p, t = _instances(pred), _instances(truth)
    m = _match(p, t, iou_threshold)
    tp = len(m)
    fp, fn = len(p) - tp, len(t) - tp
    prec = _div(tp, tp + fp)
    rec = _div(tp, tp + fn)
    f1 = _div(2 * tp, 2 * tp + fp + fn)

    def mean_d(xs: Iterable[_Inst]) -> float:
        d = [2.0 * math.sqrt(x.area / math.pi) * pixel_size_nm for x in xs]
        return float(np.mean(d)) if d else math.nan

    dp, dt = mean_d(p), mean_d(t)
    return {
        "n_pred": float(len(p)),
        "n_true": float(len(t)),
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "mean_diameter_pred": dp,
        "mean_diameter_true": dt,
        "mean_diameter_rel_error": dp / dt - 1.0 if dt > 0 else math.nan,
        "count_rel_error": len(p) / len(t) - 1.0 if t else math.nan,
        "mean_matched_iou": float(np.mean([v for _, _, v in m])) if m else math.nan,
    }


def connected_components(mask: np.ndarray) -> np.ndarray:
    """8-connected label image of a binary mask (int32)."""
    import cv2

    m = np.ascontiguousarray(np.asarray(mask).astype(np.uint8))
    _, lab = cv2.connectedComponents(m, connectivity=8, ltype=cv2.CV_32S)
    return lab
