"""Writes ``MODEL_CARD.md`` from a training summary and an evaluation report (torch-free)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TARGETS = {"synthetic_iou": 0.90, "real_iou": 0.83, "seconds_1024": 0.6}


def _f(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{nd}f}"


def _row(name: str, m: dict[str, Any], ceiling: bool = False) -> str:
    inst = m.get("instance", {})
    return (
        f"| {name} | {_f(m['iou'][1])} | "
        + (f"{_f(m.get('ceiling_iou'))} | " if ceiling else "")
        + f"{_f(m['dice'][1])} | {_f(m['iou'][0])} | "
        f"{_f(m['global_accuracy'])} | {_f(m['class_accuracy'][1])} | "
        f"{_f(inst.get('precision'))} | {_f(inst.get('recall'))} | {_f(inst.get('f1'))} | "
        f"{_f(inst.get('mean_abs_diameter_rel_error'))} | "
        f"{_f(inst.get('mean_abs_count_rel_error'))} |"
    )


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def write_card(
    path: str | Path,
    *,
    report: dict[str, Any],
    training: dict[str, Any],
    reproduce: str,
    notes: str = "",
    threshold: float = 0.5,
) -> str:
    """Render the model card; returns the text and writes it to ``path``."""
    syn = report.get("synthetic", {})
    real = report.get("real")
    timing = report.get("timing", {})
    cfg = training.get("config", {})
    ceiling = any("ceiling_iou" in m for m in syn.values())
    w = cfg.get("regime_weights") or [0.3, 0.2, 0.2, 0.15, 0.15]  # generate("mixed")'s mix
    mix = [f"{100 * v / sum(w):.0f}" for v in w]
    lines = [
        "# antema-unet — the shipped segmentation model",
        "",
        "Binary particle / background segmentation of TEM, HRTEM and HAADF-STEM micrographs of "
        "metal nanoparticles. File: `antema-unet.onnx` (FP32) and `antema-unet.fp16.onnx` (FP16 "
        "weights, FP32 input/output, for TensorRT). Input `image` `[N, 1, H, W]` float32 after "
        "the preprocessing in the metadata (`antema.preprocessing`), H and W padded to a multiple "
        f"of {training.get('pad_multiple', 32)}; output `probability` `[N, 1, H, W]` (sigmoid "
        f"inside the graph); threshold {threshold:g}. Trained across pixel sizes "
        "(`antema.pixel_size_nm` = null).",
        "",
        "## Model",
        "",
        f"- Architecture: `{cfg.get('model', 'unet')}` (compact U-Net: 3×3 conv + BN + ReLU at "
        "full "
        "resolution, a stride-2 stem, a 4-level U-Net at half resolution with widths "
        f"{cfg.get('base', 16)}·2^k, bilinear upsampling, and a full-resolution refinement), "
        f"{_count(training.get('parameters'))} parameters, plain torch, exported with opset 17.",
        f"- Preprocessing: `{json.dumps(cfg.get('preprocessing', {}), sort_keys=True)}` "
        "(Gaussian blur, percentile scaling to [0, 1], 256 levels).",
        "",
        "## Data",
        "",
        "- Synthetic micrographs generated on the fly by `antema_fast.synth.generate`: "
        f"bright-field TEM ({mix[0]} %), HRTEM with lattice fringes ({mix[1]} %), HAADF-STEM "
        f"({mix[2]} %), ultrasmall 1–3 nm particles at low contrast ({mix[3]} %), low-dose "
        f"bright field ({mix[4]} %); pixel sizes 0.02–1 nm/px, log-normal diameters 1–50 nm, "
        "seven shapes, "
        "touching/overlapping clusters, amorphous carbon, defocus blur, Fresnel fringes, "
        "gradients, gain and Poisson noise.",
        f"- Real: msaem (`../shared/data/train/msaem/`, CC-BY-4.0), {cfg.get('real_fraction', 0)} "
        "of the tiles; images 0–14 train, images 15–19 held out (never trained on).",
        "- Augmentation: scale 0.5–2×, any rotation, x/y reflection, brightness, contrast, "
        "gamma, Gaussian noise and blur (real tiles); rotation by 90°, reflection, mild "
        "noise/blur and the same photometric changes (synthetic tiles).",
        "",
        "## Training",
        "",
        f"- {training.get('steps_done')} steps of batch {cfg.get('batch')} × "
        f"{cfg.get('tile')}² tiles, AdamW lr {cfg.get('lr')} (warm-up {cfg.get('warmup')} "
        "steps, cosine decay), weight decay "
        f"{cfg.get('weight_decay')}, loss BCE + soft Dice, seed {cfg.get('seed')}, "
        f"{cfg.get('threads')} torch threads.",
        f"- Time: {_f(training.get('wall_seconds', 0) / 60, 1)} min wall clock on a shared "
        "2-core CPU (other jobs running), "
        f"{_f(training.get('train_seconds', 0) / max(training.get('steps_done', 1), 1), 2)} s "
        "per step on average.",
        "",
        "Reproduce (CPU, about the same wall time; the schedule follows the wall-clock budget, so "
        "a faster or slower machine does more or fewer steps):",
        "",
        "```",
        reproduce,
        "```",
        "",
        "## Results",
        "",
        "Particle IoU / Dice, background IoU, global accuracy, particle class accuracy; instance "
        "metrics match 8-connected components of prediction and truth one-to-one at IoU ≥ 0.5 "
        "(no separation step; touching particles count as one component on both sides). "
        "Diameter and count errors are mean |relative error| per image."
        + (
            " Ceiling: the pooled particle IoU an ideal observer could reach on the same "
            "synthetic images (`antema evaluate --ceiling`, `antema_fast.train.bound`)."
            if ceiling
            else ""
        ),
        "",
        "| set | IoU | "
        + ("ceiling | " if ceiling else "")
        + "Dice | bg IoU | global acc. | class acc. | precision | recall | F1 | "
        "mean-diameter error | count error |",
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if ceiling else ""),
    ]
    for name in ("all", "tem", "hrtem", "haadf", "ultrasmall", "lowdose"):
        if name in syn:
            lines.append(_row(f"synthetic {name}", syn[name], ceiling))
    if real:
        lines.append(_row("msaem held-out (5 real)", real, ceiling))
    lines.append("")
    if real:
        conf = real["confusion"]
        lines += [
            "Normalised confusion matrix on the 5 held-out real images (rows: true background, "
            f"particle): [[{_f(conf[0][0])}, {_f(conf[0][1])}], "
            f"[{_f(conf[1][0])}, {_f(conf[1][1])}]].",
            "",
        ]
    n_syn = report.get("synthetic_per_regime", "?")
    lines += [
        f"Synthetic test set: {n_syn} images of 256² per regime, seeds disjoint from training "
        "(`antema_fast.train.data.synthetic_set(..., seed=12345)`).",
        "",
        "## Targets",
        "",
    ]
    s_iou = syn.get("all", {}).get("iou", [0, math.nan])[1]
    worst = min((syn[r]["iou"][1] for r in syn if r != "all"), default=math.nan)
    lines.append(
        f"- Synthetic particle IoU ≥ {TARGETS['synthetic_iou']}: overall {_f(s_iou)}, worst "
        f"regime {_f(worst)} — {_met(s_iou >= TARGETS['synthetic_iou'])} overall, "
        f"{_met(worst >= TARGETS['synthetic_iou'])} in every regime."
    )
    beyond = [r for r in syn if r != "all" and syn[r].get("ceiling_iou", 1.0) < 0.9]
    if beyond:
        lines.append(
            f"  In {', '.join(beyond)} even an ideal observer stays below "
            f"{TARGETS['synthetic_iou']} (ceiling "
            + ", ".join(_f(syn[r]["ceiling_iou"]) for r in beyond)
            + "): no model can meet the target there."
        )
    if real:
        r_iou = real["iou"][1]
        lines.append(
            f"- Real held-out particle IoU ≥ {TARGETS['real_iou']} (the paper's 83.0 %): "
            f"{_f(r_iou)} — {_met(r_iou >= TARGETS['real_iou'])}."
        )
    if timing:
        t = timing["seconds_median"]
        lines.append(
            f"- 1024² inference on {timing['threads']} CPU threads with ONNX Runtime ≤ "
            f"{TARGETS['seconds_1024']} s: {_f(t, 2)} s median (preprocessing included, measured "
            f"on the shared machine) — {_met(t <= TARGETS['seconds_1024'])}."
        )
    if notes:
        lines += ["", "## Notes", "", notes]
    lines.append("")
    text = "\n".join(lines)
    Path(path).write_text(text)
    return text


def compact_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of an evaluation report, for the ``antema.metrics`` metadata."""
    out: dict[str, Any] = {}
    for name, m in report.get("synthetic", {}).items():
        out[f"synthetic_{name}_iou"] = round(float(m["iou"][1]), 4)
        out[f"synthetic_{name}_dice"] = round(float(m["dice"][1]), 4)
        if "ceiling_iou" in m:
            out[f"synthetic_{name}_ceiling_iou"] = round(float(m["ceiling_iou"]), 4)
    real = report.get("real")
    if real:
        out["msaem_heldout_iou"] = round(float(real["iou"][1]), 4)
        out["msaem_heldout_dice"] = round(float(real["dice"][1]), 4)
        out["msaem_heldout_global_accuracy"] = round(float(real["global_accuracy"]), 4)
        out["msaem_heldout_images"] = real.get("images", [])
    if "timing" in report:
        out["seconds_1024_2threads"] = round(float(report["timing"]["seconds_median"]), 3)
    return out


def release(
    onnx_path: str | Path,
    models_dir: str | Path,
    *,
    report: dict[str, Any],
    training: dict[str, Any],
    reproduce: str,
    notes: str = "",
    name: str = "antema-unet",
    threshold: float | None = None,
) -> Path:
    """Copy a trained ONNX model into the package with its evaluation in the metadata.

    Writes ``<models_dir>/<name>.onnx`` (``antema.metrics`` replaced by
    :func:`compact_metrics` of ``report``), its FP16 sibling ``<name>.fp16.onnx`` (weights in
    float16, input and output kept float32) and ``MODEL_CARD.md``. ``threshold`` replaces the
    decision threshold stored in the model (for example one from
    :func:`antema_fast.train.evaluate.calibrate_threshold`).
    """
    import warnings

    import onnx
    from onnxconverter_common import float16

    from .._preprocess import META_METRICS, META_THRESHOLD

    out = Path(models_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = onnx.load(str(onnx_path))
    props = {META_METRICS: json.dumps(compact_metrics(report), sort_keys=True)}
    if threshold is not None:
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold: expected a value in (0, 1), got {threshold!r}")
        props[META_THRESHOLD] = repr(float(threshold))
    for key, value in props.items():
        found = False
        for p in m.metadata_props:
            if p.key == key:
                p.value = value
                found = True
        if not found:
            q = m.metadata_props.add()
            q.key, q.value = key, value
    onnx.checker.check_model(m)
    dst = out / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        m16 = float16.convert_float_to_float16(m, keep_io_types=True)
    for model, target in ((m, dst), (m16, out / f"{name}.fp16.onnx")):
        part = target.with_suffix(".part")  # atomic: a crash leaves the old file whole
        onnx.save(model, str(part))
        part.replace(target)
    thr = float(threshold) if threshold is not None else _stored_threshold(m)
    write_card(
        out / "MODEL_CARD.md",
        report=report,
        training=training,
        reproduce=reproduce,
        notes=notes,
        threshold=thr,
    )
    return dst


def _stored_threshold(model: Any) -> float:
    from .._preprocess import META_THRESHOLD

    for p in model.metadata_props:
        if p.key == META_THRESHOLD:
            return float(p.value)
    return 0.5
