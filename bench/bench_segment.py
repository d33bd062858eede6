"""Segmentation speed per backend and thread count, and the threshold baseline vs the model.

Part 1 — speed: seconds per 1024² and 2048² frame (median of ``--repeat`` runs after one warm-up)
for every backend that works here: ONNX Runtime on the CPU with 1 and 2 threads, ONNX Runtime
with CUDA and TensorRT when present, and the threshold baseline; printed as a table with frames
per second.

Part 2 — accuracy at low contrast: IoU against ground truth of the threshold baseline (Otsu and
adaptive) and of the model on synthetic low-contrast micrographs (``antema_fast.synth`` regimes
``lowdose`` and ``ultrasmall``, fixed seeds), where the paper says thresholding fails.

The benchmark checks its results: 1 and 2 threads must give the same masks, and TensorRT (when
present) must agree with ONNX Runtime (IoU of masks > 0.97).

The shipped model (``antema-unet``) is used when it exists; otherwise ``--model PATH``; otherwise
the fixed-weight test model of ``tests/segment`` (a blur and a sigmoid, *not* a trained network:
its timings and IoU say nothing about the real model) — the output says which.

Usage::

    nice -n 10 python bench/bench_segment.py
    nice -n 10 python bench/bench_segment.py --repeat 5 --json bench/results/segment.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from antema_fast import Settings
from antema_fast.segment import Segmenter, list_models
from antema_fast.segment._models import DEFAULT_MODEL, load_model_info
from antema_fast.segment._threshold import threshold_segment
from antema_fast.synth import generate

REPO = Path(__file__).resolve().parents[1]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _pick_model(arg: str | None, tmp: Path) -> tuple[str, str]:
    if arg:
        return arg, f"given model {arg}"
    if DEFAULT_MODEL in list_models():
        return DEFAULT_MODEL, f"shipped model {DEFAULT_MODEL}"
    sys.path.insert(0, str(REPO / "tests" / "segment"))
    from segment_helpers import write_test_model

    path = write_test_model(tmp / "test-blur-sigmoid.onnx")
    return str(path), "TEST MODEL (fixed-weight blur + sigmoid; the shipped model is absent)"


def _time(seg: Segmenter, image: np.ndarray, repeat: int) -> tuple[float, np.ndarray]:
    out = seg.segment(image)  # warm-up (engine build, allocations)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = seg.segment(image)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out.mask


def _engines(model: str) -> list[tuple[str, int | None, Segmenter]]:
    logging.getLogger("antema_fast.segment").setLevel(logging.WARNING)
    engines: list[tuple[str, int | None, Segmenter]] = []
    for threads in (1, 2):
        seg = Segmenter(Settings(threads=threads), backend="onnxruntime", model=model)
        engines.append((seg.backend_name, threads, seg))
    auto = Segmenter(Settings(threads=2), backend="auto", model=model)
    if auto.backend_name != "onnxruntime-cpu":  # a GPU engine is available
        engines.append((auto.backend_name, None, auto))
    else:
        print("GPU engines: none here (" + "; ".join(auto.fallbacks) + ")")
    engines.append(("threshold", None, Segmenter(backend="threshold")))
    return engines


def speed(model: str, repeat: int, sizes: list[int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    frames = {n: generate(seed=n, shape=(n, n), regime="tem").image for n in sizes}
    reference: dict[int, np.ndarray] = {}
    for name, threads, seg in _engines(model):
        for n, image in frames.items():
            seconds, mask = _time(seg, image, repeat)
            if name.startswith("onnxruntime-cpu"):
                if n in reference:
                    assert np.array_equal(mask, reference[n]), "1 and 2 threads disagree"
                reference[n] = mask
            elif name != "threshold" and n in reference:
                agree = _iou(mask, reference[n])
                assert agree > 0.97, f"{name} disagrees with ONNX Runtime: IoU {agree:.3f}"
            rows.append(
                {
                    "backend": name,
                    "threads": threads if threads is not None else "-",
                    "frame": f"{n}x{n}",
                    "seconds": seconds,
                    "fps": 1.0 / seconds,
                }
            )
            print(
                f"  {name:16s} threads={rows[-1]['threads']!s:2s} {n}²: {seconds:.3f} s", flush=True
            )
    return rows


def accuracy(model: str, n_images: int, size: int) -> list[dict[str, object]]:
    seg = Segmenter(Settings(threads=2), backend="onnxruntime", model=model)
    methods = {
        "threshold (Otsu)": lambda im, px: threshold_segment(im)[0],
        "threshold (adaptive)": lambda im, px: threshold_segment(im, method="adaptive")[0],
        "model": lambda im, px: seg.segment(im, pixel_size_nm=px).mask,
    }
    rows = []
    for regime in ("lowdose", "ultrasmall"):
        scores: dict[str, list[float]] = {m: [] for m in methods}
        pooled = {m: [0, 0] for m in methods}
        for k in range(n_images):
            s = generate(seed=1000 + k, shape=(size, size), regime=regime)
            for name, run in methods.items():
                mask = run(s.image, s.pixel_size_nm)
                scores[name].append(_iou(mask, s.semantic))
                pooled[name][0] += int(np.logical_and(mask, s.semantic).sum())
                pooled[name][1] += int(np.logical_or(mask, s.semantic).sum())
        for name, v in scores.items():
            rows.append(
                {
                    "regime": regime,
                    "method": name,
                    "pooled_iou": pooled[name][0] / max(pooled[name][1], 1),
                    "mean_iou": float(np.mean(v)),
                    "min_iou": float(np.min(v)),
                    "images": len(v),
                }
            )
    return rows


def _table(rows: list[dict[str, object]], cols: list[str], fmt: dict[str, str]) -> str:
    cells = [[fmt.get(c, "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model name or ONNX path")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case (median)")
    ap.add_argument("--sizes", default="1024,2048", help="frame sides, comma-separated")
    ap.add_argument("--images", type=int, default=6, help="low-contrast images per regime")
    ap.add_argument("--iou-size", type=int, default=512, help="side of the low-contrast images")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, what = _pick_model(args.model, Path(tmp))
        info = load_model_info(model)
        print(f"model: {what}; sha256 {info.sha256[:12]}")
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"{platform.python_implementation()} {platform.python_version()}"
        )
        sizes = [int(s) for s in args.sizes.split(",")]
        speed_rows = speed(model, args.repeat, sizes)
        print(f"\nSeconds per frame (median of {args.repeat}):")
        print(
            _table(
                speed_rows,
                ["backend", "threads", "frame", "seconds", "fps"],
                {"seconds": "{:.3f}", "fps": "{:.2f}"},
            )
        )
        acc_rows = accuracy(model, args.images, args.iou_size)
        print(f"\nIoU vs ground truth on low-contrast synthetic images ({args.iou_size}²):")
        print(
            _table(
                acc_rows,
                ["regime", "method", "pooled_iou", "mean_iou", "min_iou", "images"],
                {"pooled_iou": "{:.3f}", "mean_iou": "{:.3f}", "min_iou": "{:.3f}"},
            )
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(
                json.dumps(
                    {
                        "model": what,
                        "model_sha256": info.sha256,
                        "cpus": os.cpu_count(),
                        "speed": speed_rows,
                        "accuracy": acc_rows,
                    },
                    indent=1,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
