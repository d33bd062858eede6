"""Evaluation of an exported ONNX model (torch-free: ONNX Runtime + NumPy).

Used by ``antema evaluate`` and by training's final report. The model's preprocessing, padding
multiple and threshold are read from its metadata, exactly as inference does.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics as M
from .._preprocess import (
    INPUT_NAME,
    META_PAD_MULTIPLE,
    META_PREPROCESSING,
    META_THRESHOLD,
    OUTPUT_NAME,
    Preprocessing,
)
from ..segment._tiling import flip_views


@dataclass
class OnnxSegmenter:
    """Minimal ONNX Runtime runner for evaluation: preprocess → pad → run → crop → threshold.

    ``flip_views`` (1, 2 or 4) averages the probability over mirrored views, as
    ``Settings.flip_views`` does in the pipeline.
    """

    path: Path
    threads: int | None = None
    flip_views: int = 1

    def __post_init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        for key in (META_PREPROCESSING, META_PAD_MULTIPLE, META_THRESHOLD):
            if key not in meta:
                raise ValueError(f"{self.path}: ONNX metadata lacks {key!r}")
        self.metadata = dict(meta)
        self.preprocessing = Preprocessing.from_json(meta[META_PREPROCESSING])
        self.pad_multiple = int(meta[META_PAD_MULTIPLE])
        self.threshold = float(meta[META_THRESHOLD])
        self._run = flip_views(
            lambda x: self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], self.flip_views
        )

    def probability(self, image: np.ndarray) -> np.ndarray:
        x = self.preprocessing.apply(image)
        h, w = x.shape
        m = self.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = np.pad(x, ((0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
        out = self._run(np.ascontiguousarray(x[None, None], dtype=np.float32))
        return np.asarray(out[0, 0, :h, :w], dtype=np.float32)

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.probability(image) > self.threshold


def _nanmean_abs(values: Iterable[float]) -> float:
    v = [abs(x) for x in values if math.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


def _summ(counts: np.ndarray, inst: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = dict(M.metrics_from_confusion(counts))
    tp = sum(d["tp"] for d in inst)
    fp = sum(d["fp"] for d in inst)
    fn = sum(d["fn"] for d in inst)
    out["instance"] = {
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan,
        "mean_abs_diameter_rel_error": _nanmean_abs(d["mean_diameter_rel_error"] for d in inst),
        "mean_abs_count_rel_error": _nanmean_abs(d["count_rel_error"] for d in inst),
    }
    return out


def _empty_split() -> dict[str, np.ndarray]:
    """Accumulators (fields, intersection, union) of film-hole and of plain fields."""
    return {k: np.zeros(3, np.int64) for k in ("film_hole", "plain")}


def _split_summary(split: dict[str, np.ndarray]) -> dict[str, dict[str, float | int]]:
    """Pooled particle IoU of the fields that show a hole in the support film and of the
    plain ones (``n`` fields, ``intersection`` and ``union`` in pixels)."""
    out: dict[str, dict[str, float | int]] = {}
    for k, (n, inter, union) in split.items():
        out[k] = {
            "n": int(n),
            "intersection": int(inter),
            "union": int(union),
            "iou": float(inter / union) if union else math.nan,
        }
    return out


def evaluate_pairs(
    seg: OnnxSegmenter,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    pixel_size_nm: float = 1.0,
) -> dict[str, Any]:
    """Pooled paper metrics and instance metrics over ``(image, true_mask)`` pairs.

    Instances are the 8-connected components of the predicted and of the true mask (no
    separation step), so the instance numbers measure segmentation, not separation.
    """
    counts = np.zeros((2, 2), np.int64)
    inst = []
    for image, truth in pairs:
        pred = seg.predict(image)
        counts += M.confusion_counts(pred, truth)
        inst.append(
            M.instance_metrics(
                M.connected_components(pred), M.connected_components(truth), pixel_size_nm
            )
        )
    return _summ(counts, inst)


def calibrate_threshold(
    model_path: str | Path,
    *,
    synthetic_per_regime: int = 60,
    synthetic_tile: int = 256,
    synthetic_seed: int = 777,
    thresholds: Sequence[float] = tuple(np.round(np.arange(0.20, 0.801, 0.05), 2)),
    threads: int = 2,
) -> dict[str, Any]:
    """The decision threshold that maximises the pooled particle IoU on a synthetic
    *validation* set (all regimes pooled; default seed 777, disjoint from the test set's 12345
    and from training's).

    Returns ``{"threshold": best, "thresholds": [...], "iou": [...], "iou_at_model": x,
    "regimes": {regime: IoU at best}}``, ``iou_at_model`` being the IoU at the threshold stored
    in the model. Write the result into a model with :func:`antema_fast.train.card.release`
    (``threshold=``). The default of 60 images per regime (300 fields of 256², about 20 s on 2
    threads) is what it takes to tell models apart that differ by about 0.003: on 24 per regime
    such differences between fine-tuning phases did not hold on the test set (model card).
    """
    from .data import synthetic_set

    seg = OnnxSegmenter(Path(model_path), threads=threads)
    ts = np.asarray(sorted({float(t) for t in thresholds} | {seg.threshold}), np.float64)
    if ts.size == 0 or not np.all((ts > 0) & (ts < 1)):
        raise ValueError(f"thresholds: expected values in (0, 1), got {list(thresholds)!r}")
    counts: dict[str, np.ndarray] = {}  # regime → [intersection, union] per threshold
    for regime, s in synthetic_set(synthetic_per_regime, synthetic_tile, synthetic_seed):
        truth = s.semantic.astype(bool)
        prob = seg.probability(s.image)
        c = counts.setdefault(regime, np.zeros((2, ts.size)))
        for i, t in enumerate(ts):
            pred = prob > t
            c[0, i] += np.count_nonzero(pred & truth)
            c[1, i] += np.count_nonzero(pred | truth)

    def ratio(c: np.ndarray) -> np.ndarray:
        return np.divide(c[0], c[1], out=np.ones(ts.size), where=c[1] > 0)

    iou = ratio(np.sum(list(counts.values()), axis=0))
    best = int(np.argmax(iou))
    return {
        "threshold": float(ts[best]),
        "thresholds": ts.tolist(),
        "iou": iou.tolist(),
        "iou_at_model": float(iou[int(np.flatnonzero(ts == seg.threshold)[0])]),
        "regimes": {r: float(ratio(c)[best]) for r, c in counts.items()},
    }


def compare_models(
    model_paths: Sequence[str | Path],
    *,
    seeds: Sequence[int] = (4242, 9090),
    synthetic_per_regime: int = 60,
    synthetic_tile: int = 256,
    threads: int = 2,
    bootstrap: int = 2000,
    rng_seed: int = 0,
) -> dict[str, Any]:
    """Pooled particle IoU of several models on the same fresh synthetic fields, each at its own
    stored threshold, and each model's difference from the first with a 95 % interval.

    Every seed draws ``synthetic_per_regime`` fields per regime
    (:func:`antema_fast.train.data.synthetic_set`); all models see the same fields. The interval
    is a paired bootstrap over fields, stratified by seed and regime: the same resampled fields
    for every model, the pooled IoU (intersection over union summed over the fields) recomputed
    for each. Pooling several fresh sets resolves differences a single 300-field set cannot
    (model card, phases 16-18).

    Returns
    -------
    dict
        ``models`` (paths), ``thresholds``, ``fields`` (per seed), ``iou``: per model
        ``{"all": x, "seeds": {seed: x}, "regimes": {regime: x}}``; ``difference``: per model
        after the first, ``{"all": d, "ci95": [lo, hi], "seeds": {seed: d}, "regimes": {...}}``.
    """
    from .data import synthetic_set

    if not model_paths:
        raise ValueError("model_paths: expected at least one model")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    segs = [OnnxSegmenter(Path(p), threads=threads) for p in model_paths]
    n_models = len(segs)
    counts: list[list[float]] = []  # per field: [I_0, U_0, I_1, U_1, ...]
    strata: list[tuple[int, str]] = []
    for seed in seeds:
        for regime, field in synthetic_set(synthetic_per_regime, synthetic_tile, int(seed)):
            truth = field.semantic.astype(bool)
            row: list[float] = []
            for seg in segs:
                pred = seg.predict(field.image)
                row += [
                    float(np.count_nonzero(pred & truth)),
                    float(np.count_nonzero(pred | truth)),
                ]
            counts.append(row)
            strata.append((int(seed), regime))
    c = np.asarray(counts, np.float64).reshape(len(counts), n_models, 2)

    def pooled(sel: np.ndarray) -> np.ndarray:  # per model
        tot = c[sel].sum(axis=0)
        return np.divide(tot[:, 0], tot[:, 1], out=np.ones(n_models), where=tot[:, 1] > 0)

    everything = np.ones(len(c), bool)
    by_seed = {
        s: np.array([st[0] == s for st in strata]) for s in dict.fromkeys(int(x) for x in seeds)
    }
    regimes = list(dict.fromkeys(st[1] for st in strata))
    by_regime = {r: np.array([st[1] == r for st in strata]) for r in regimes}
    iou_all, iou_seed = pooled(everything), {s: pooled(m) for s, m in by_seed.items()}
    iou_regime = {r: pooled(m) for r, m in by_regime.items()}

    rng = np.random.default_rng(rng_seed)
    groups = [np.flatnonzero([st == key for st in strata]) for key in dict.fromkeys(strata)]
    boot = np.empty((bootstrap, n_models))
    for b in range(bootstrap):
        idx = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        tot = c[idx].sum(axis=0)
        boot[b] = np.divide(tot[:, 0], tot[:, 1], out=np.ones(n_models), where=tot[:, 1] > 0)
    report: dict[str, Any] = {
        "models": [str(p) for p in model_paths],
        "thresholds": [seg.threshold for seg in segs],
        "fields": {str(s): int(m.sum()) for s, m in by_seed.items()},
        "iou": [],
        "difference": [],
    }
    for j in range(n_models):
        report["iou"].append(
            {
                "all": float(iou_all[j]),
                "seeds": {str(s): float(v[j]) for s, v in iou_seed.items()},
                "regimes": {r: float(v[j]) for r, v in iou_regime.items()},
            }
        )
        if j == 0:
            continue
        d = boot[:, j] - boot[:, 0]
        report["difference"].append(
            {
                "model": str(model_paths[j]),
                "all": float(iou_all[j] - iou_all[0]),
                "ci95": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))],
                "seeds": {str(s): float(v[j] - v[0]) for s, v in iou_seed.items()},
                "regimes": {r: float(v[j] - v[0]) for r, v in iou_regime.items()},
            }
        )
    return report


def _field_record(regime: str, k: int, s: Any, c: np.ndarray) -> dict[str, Any]:
    """One synthetic field's particle counts (``c``: confusion counts, truth × prediction) and
    what describes it, keyed so that :func:`antema_fast.train.data.synthetic_field` redraws it."""
    d = np.asarray(s.diameters_nm, np.float64)
    return {
        "regime": regime,
        "index": k,
        "pixel_size_nm": float(s.pixel_size_nm),
        "median_diameter_px": float(np.median(d) / s.pixel_size_nm) if d.size else math.nan,
        "particles": int(d.size),
        "film_hole": s.film is not None,
        "true_positive": int(c[1, 1]),
        "false_positive": int(c[0, 1]),
        "false_negative": int(c[1, 0]),
    }


def pipeline_field(source: Any, s: Any, settings: Any = None) -> dict[str, Any]:
    """One synthetic field ``s`` (:class:`antema_fast.synth.SynthImage`) through the analysis,
    against its true particles that do not touch the border (each its own full mask, overlaps
    included). ``source`` is a mask, taken through what follows segmentation
    (:func:`antema_fast.separate.postprocess`: despeckling, border removal, separation,
    measurement), or the :class:`antema_fast.AnalysisResult` of the field's image (what
    ``antema analyze`` gives, its scale check and second pass included).

    Returns ``n_true``, ``n_measured``, ``tp`` (one-to-one matches at IoU ≥ 0.5), and the
    equivalent diameters in nm: ``d_true``, ``d_measured`` (the table's column) and ``pairs``
    ``(measured, true)`` of the matches. :func:`pipeline_summary` pools them.
    """
    from ..separate import postprocess

    res = (
        postprocess(source, s.pixel_size_nm, settings, image=getattr(s, "image", None))
        if isinstance(source, np.ndarray)
        else source
    )
    truth = [i for i in s.instances if not i.touches_border and i.area_px > 0]
    d_true = np.array([i.equivalent_diameter_nm for i in truth], np.float64)
    return _match_record(res, truth, d_true)


def pipeline_pair(
    source: Any, label: np.ndarray, pixel_size_nm: float, image: Any = None, settings: Any = None
) -> dict[str, Any]:
    """:func:`pipeline_field` for a real image with a hand-made semantic label (``label``
    nonzero = particle): the true particles are the label's 8-connected components that do not
    touch the border, measured as they are (a label cannot say where touching particles
    part). ``source`` is a mask (through :func:`antema_fast.separate.postprocess`, with
    ``image`` for ``Settings.min_contrast_z``) or the image's
    :class:`antema_fast.AnalysisResult`."""
    from ..separate import postprocess

    res = (
        postprocess(source, pixel_size_nm, settings, image=image)
        if isinstance(source, np.ndarray)
        else source
    )
    truth = postprocess(
        np.asarray(label) > 0, pixel_size_nm, separation="none", min_diameter_nm=0.0
    )
    d_true = truth.table["equivalent_diameter_nm"].to_numpy(np.float64)
    return _match_record(res, truth.particles, d_true)


def _match_record(res: Any, truth: Sequence[Any], d_true: np.ndarray) -> dict[str, Any]:
    """The record :func:`pipeline_summary` pools: ``res``'s particles (a postprocess or
    analysis result) matched one-to-one (IoU ≥ 0.5) with ``truth`` (diameters ``d_true``)."""
    matches = M.match_instances(res.particles, truth)
    d_measured = res.table["equivalent_diameter_nm"].to_numpy(np.float64)
    return {
        "n_true": len(truth),
        "n_measured": len(res.particles),
        "tp": len(matches),
        "d_true": d_true,
        "d_measured": d_measured,
        "pairs": [(float(d_measured[i]), float(d_true[j])) for i, j, _ in matches],
    }


def pipeline_summary(fields: Sequence[dict[str, Any]]) -> dict[str, float | int]:
    """Pooled :func:`pipeline_field` records: what a user of ``antema analyze`` gets against
    the truth. ``count_ratio`` (measured / true particles), instance ``precision``, ``recall``
    and ``f1``, the pooled mean and SD of the equivalent diameter on both sides with
    ``mean_diameter_bias`` (measured mean / true mean − 1) and ``sd_ratio``, and over matched
    particles the median signed and absolute relative diameter error."""
    n_true = sum(f["n_true"] for f in fields)
    n_meas = sum(f["n_measured"] for f in fields)
    tp = sum(f["tp"] for f in fields)
    dt = np.concatenate([f["d_true"] for f in fields]) if fields else np.zeros(0)
    dm = np.concatenate([f["d_measured"] for f in fields]) if fields else np.zeros(0)
    pairs = np.array([p for f in fields for p in f["pairs"]], np.float64).reshape(-1, 2)
    rel = pairs[:, 0] / pairs[:, 1] - 1.0

    def stat(fn: Any, v: np.ndarray) -> float:
        return float(fn(v)) if v.size else math.nan

    mt, mm = stat(np.mean, dt), stat(np.mean, dm)
    st, sm = stat(np.std, dt), stat(np.std, dm)
    return {
        "n_true": int(n_true),
        "n_measured": int(n_meas),
        "count_ratio": n_meas / n_true if n_true else math.nan,
        "precision": tp / n_meas if n_meas else math.nan,
        "recall": tp / n_true if n_true else math.nan,
        "f1": 2 * tp / (n_meas + n_true) if n_meas + n_true else math.nan,
        "mean_diameter_true_nm": mt,
        "mean_diameter_measured_nm": mm,
        "mean_diameter_bias": mm / mt - 1.0 if mt > 0 else math.nan,
        "sd_diameter_true_nm": st,
        "sd_diameter_measured_nm": sm,
        "sd_ratio": sm / st if st > 0 else math.nan,
        "matched_diameter_bias_median": stat(np.median, rel),
        "matched_diameter_abs_error_median": stat(np.median, np.abs(rel)),
    }


def worst_fields_summary(fields: Sequence[dict[str, Any]], n: int = 10) -> dict[str, Any]:
    """Where the wrong pixels of a synthetic set lie: the ``n`` fields with the most of them
    (each with its IoU, its ``share`` of all wrong pixels and ``iou_if_right``, the pooled IoU
    of the set had this field and those listed before it been segmented exactly), and
    ``error_concentration``, the share of the wrong pixels in the worst tenth of the fields.

    A few fields holding much of the error point to a failure mode to look at (redraw a field
    with :func:`antema_fast.train.data.synthetic_field`); wrong pixels spread evenly point to
    boundaries, which only a better model moves.
    """
    tp = np.array([f["true_positive"] for f in fields], np.float64)
    fp = np.array([f["false_positive"] for f in fields], np.float64)
    fn = np.array([f["false_negative"] for f in fields], np.float64)
    wrong = fp + fn
    total = float(wrong.sum())
    order = np.argsort(-wrong, kind="stable")
    inter, union = float(tp.sum()), float((tp + fp + fn).sum())
    listed = []
    for i in order[: max(int(n), 0)]:
        f = fields[int(i)]
        inter += fn[i]  # made right: its misses join the intersection, its false pixels leave
        union -= fp[i]
        u = tp[i] + wrong[i]
        listed.append(
            {
                **f,
                "iou": float(tp[i] / u) if u else math.nan,
                "share": float(wrong[i] / total) if total else 0.0,
                "iou_if_right": inter / union if union else math.nan,
            }
        )
    tenth = max(1, math.ceil(len(fields) / 10)) if fields else 0
    return {
        "worst_fields": listed,
        "error_concentration": float(wrong[order[:tenth]].sum() / total) if total else 0.0,
    }


def evaluate_model(
    model_path: str | Path,
    *,
    synthetic_per_regime: int = 20,
    synthetic_tile: int = 256,
    synthetic_seed: int = 12345,
    real_folder: str | Path | None = None,
    real_names: Sequence[str] | None = None,
    threads: int = 2,
    timing_size: int = 1024,
    timing_repeats: int = 3,
    ceiling: bool = False,
    flip_views: int = 1,
    worst_fields: int = 10,
    pipeline: bool = False,
    min_contrast_z: float = 0.0,
) -> dict[str, Any]:
    """Evaluate an ONNX model on a fresh synthetic test set (per regime), real pairs, and time it.

    Parameters
    ----------
    model_path : path
        The ``.onnx`` file.
    synthetic_per_regime : int
        Test images per regime (0 skips the synthetic set). Seeds are disjoint from training's.
    real_folder : path, optional
        A folder of image + mask pairs (see :func:`antema_fast.train.data.load_pairs`).
    real_names : sequence of str, optional
        Only these file names from ``real_folder`` (e.g. the msaem validation split).
    threads : int
        ONNX Runtime intra-op threads.
    timing_size : int
        Side of the square image used for the timing (0 skips the timing).
    ceiling : bool
        Also estimate, per regime, the pooled particle IoU an ideal observer could reach on the
        same synthetic images (:func:`antema_fast.train.bound.iou_ceiling`; ``ceiling_iou``
        beside ``iou``). Costly: every particle is re-rendered six times.
    flip_views : {1, 2, 4}
        Average the model over this many mirrored views (``Settings.flip_views``); the
        timing includes them.
    worst_fields : int
        How many fields ``synthetic.all.worst_fields`` lists (see :func:`worst_fields_summary`).
    pipeline : bool
        Also analyse each synthetic field as ``antema analyze`` does (:func:`antema_fast.analyze`
        with this model, default :class:`antema_fast.Settings` otherwise: the scale check and
        its second pass for wide particles, despeckling, border removal, UECS) and report, per
        regime, its particles against the true particles inside the field
        (:func:`pipeline_field`, :func:`pipeline_summary`): ``pipeline``; and
        ``pipeline_oracle``, the same analysis of the true mask, which shows what despeckling,
        border removal and separation alone do to the numbers. With real pairs, the same for
        them (``real.pipeline``, ``real.pipeline_oracle``; :func:`pipeline_pair`) at a nominal
        1 nm/px.
    min_contrast_z : float
        ``Settings.min_contrast_z`` of both analyses (0: off, the default analysis).

    Returns
    -------
    dict
        ``synthetic`` (``all`` and per regime; each with ``fields``: the pooled particle IoU of
        the fields that show a hole in the support film and of the plain ones; ``all`` also
        has ``worst_fields`` and ``error_concentration``, see :func:`worst_fields_summary`),
        ``real``, ``timing``.
    """
    from .. import synth
    from .bound import iou_ceiling
    from .data import load_pairs, synthetic_set

    seg = OnnxSegmenter(Path(model_path), threads=threads, flip_views=flip_views)
    report: dict[str, Any] = {"model": str(model_path), "flip_views": flip_views}
    if pipeline:
        from .. import Settings
        from ..pipeline import analyze

        settings = Settings(
            backend="onnxruntime",
            model=str(model_path),
            threads=threads,
            flip_views=flip_views,
            min_contrast_z=min_contrast_z,
        )
        oracle_settings = Settings(min_contrast_z=min_contrast_z)
        report["min_contrast_z"] = min_contrast_z
    if synthetic_per_regime > 0:
        test = synthetic_set(synthetic_per_regime, synthetic_tile, synthetic_seed)
        per: dict[str, Any] = {}
        counts_all = np.zeros((2, 2), np.int64)
        inst_all: list[dict[str, float]] = []
        bound_all = np.zeros(2)
        split_all = _empty_split()
        fields: list[dict[str, Any]] = []
        piped: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for regime in synth.REGIMES:
            counts = np.zeros((2, 2), np.int64)
            inst = []
            piped[regime] = {"pipeline": [], "pipeline_oracle": []}
            bound = np.zeros(2)  # ideal observer's expected intersection, union
            split = _empty_split()
            for k, s in enumerate(s for r, s in test if r == regime):
                if ceiling:
                    c = iou_ceiling(s)
                    bound += (c["intersection"], c["union"])
                pred = seg.predict(s.image)
                c_img = M.confusion_counts(pred, s.semantic)
                counts += c_img
                fields.append(_field_record(regime, k, s, c_img))
                split["film_hole" if s.film is not None else "plain"] += (
                    1,
                    c_img[1, 1],
                    c_img[1, 1] + c_img[0, 1] + c_img[1, 0],
                )
                inst.append(
                    M.instance_metrics(
                        M.connected_components(pred),
                        M.connected_components(s.semantic),
                        s.pixel_size_nm,
                    )
                )
                if pipeline:
                    with warnings.catch_warnings():  # quality warnings of the analysis
                        warnings.simplefilter("ignore")
                        res = analyze(s.image, pixel_size_nm=s.pixel_size_nm, settings=settings)
                    piped[regime]["pipeline"].append(pipeline_field(res, s))
                    piped[regime]["pipeline_oracle"].append(
                        pipeline_field(s.semantic, s, oracle_settings)
                    )
            per[regime] = _summ(counts, inst)
            if pipeline:
                for key, recs in piped[regime].items():
                    per[regime][key] = pipeline_summary(recs)
            per[regime]["fields"] = _split_summary(split)
            for part, v in split.items():
                split_all[part] += v
            counts_all += counts
            inst_all += inst
            if ceiling:
                per[regime]["ceiling_iou"] = float(bound[0] / bound[1])
                bound_all += bound
        per["all"] = _summ(counts_all, inst_all)
        per["all"]["fields"] = _split_summary(split_all)
        if pipeline:
            for key in ("pipeline", "pipeline_oracle"):
                per["all"][key] = pipeline_summary([f for v in piped.values() for f in v[key]])
        per["all"].update(worst_fields_summary(fields, worst_fields))
        if ceiling:
            per["all"]["ceiling_iou"] = float(bound_all[0] / bound_all[1])
        report["synthetic"] = per
        report["synthetic_per_regime"] = synthetic_per_regime
    if real_folder is not None:
        items = load_pairs(real_folder)
        if real_names is not None:
            wanted = set(real_names)
            items = [it for it in items if it.name in wanted]
        report["real"] = evaluate_pairs(seg, [(it.image, it.mask) for it in items])
        report["real"]["images"] = [it.name for it in items]
        if pipeline:  # at a nominal 1 nm/px: the pairs carry no pixel size
            real_recs: dict[str, list[dict[str, Any]]] = {"pipeline": [], "pipeline_oracle": []}
            for it in items:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = analyze(it.image, pixel_size_nm=1.0, settings=settings)
                real_recs["pipeline"].append(pipeline_pair(res, it.mask, 1.0))
                real_recs["pipeline_oracle"].append(
                    pipeline_pair(it.mask > 0, it.mask, 1.0, it.image, oracle_settings)
                )
            for key, found in real_recs.items():
                report["real"][key] = pipeline_summary(found)
    if timing_size > 0:
        rng = np.random.default_rng(0)
        img = rng.random((timing_size, timing_size)).astype(np.float32)
        seg.probability(img)  # warm-up
        ts = []
        for _ in range(timing_repeats):
            t0 = time.perf_counter()
            seg.probability(img)
            ts.append(time.perf_counter() - t0)
        report["timing"] = {
            "size": timing_size,
            "threads": threads,
            "seconds_median": float(np.median(ts)),
            "seconds_min": float(np.min(ts)),
            "includes": "preprocessing + padding + ONNX Runtime run",
        }
    return report


def to_json(report: dict[str, Any]) -> str:
    """JSON with NaN written as null."""

    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        return v

    return json.dumps(fix(report), indent=2, sort_keys=True)
