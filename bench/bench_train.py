"""Benchmark of one training step (``antema_fast.train.loop.Trainer``) in its three forms.

The shipped architecture (compact U-Net, base 16, three full-resolution blocks) starts from the
shipped model's weights and takes optimiser steps on the same synthetic batches (8 × 256², the
shipped model's training size) in each of

- float32, contiguous layout (the plain-PyTorch way, and what ``antema train`` did before
  ``--precision`` and the channels-last default);
- float32, channels-last (``TrainConfig.channels_last``, the default);
- bfloat16 autocast, channels-last (``--precision bf16``).

It prints the median seconds per step (forward, backward and AdamW step; the batch is drawn
before the clock starts) and each form's speed-up over the first. Before timing, it checks on
one batch that every form computes the float32 loss (channels-last to 1e-5, bf16 to 1 %) and
gradient (cosine ≥ 0.995), so a faster form that trains something else cannot pass.

bfloat16 is fast only on CPUs with native bf16 arithmetic (AVX-512 BF16, AMX); elsewhere it is
emulated and slower than float32.

Run: ``nice -n 10 python bench/bench_train.py [--steps 12] [--threads 2] [--json FILE]``
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import antema_fast
import numpy as np
import torch
from antema_fast.train.loop import TrainConfig, Trainer

SHIPPED = Path(antema_fast.__file__).parent / "models" / "antema-unet.onnx"
FORMS = {
    "fp32 contiguous": {"precision": "fp32", "channels_last": False},
    "fp32 channels-last": {"precision": "fp32", "channels_last": True},
    "bf16 channels-last": {"precision": "bf16", "channels_last": True},
}


def trainer(out: Path, threads: int, **form: object) -> Trainer:
    cfg = TrainConfig(
        out_dir=str(out),
        base=16,
        refine_blocks=3,
        tile=256,
        batch=8,
        lr=1e-4,
        seed=3,
        threads=threads,
        init_from=str(SHIPPED),
        regime_weights=[0.15, 0.2, 0.2, 0.225, 0.225],
        **form,  # type: ignore[arg-type]
    )
    t = Trainer(cfg, log=io.StringIO())
    t.model.train()
    return t


def loss_and_grad(t: Trainer, x: np.ndarray, y: np.ndarray) -> tuple[float, torch.Tensor]:
    loss = t._loss(x, y)
    t.opt.zero_grad(set_to_none=True)
    loss.backward()
    g = torch.cat([p.grad.reshape(-1) for p in t.model.parameters() if p.grad is not None])
    return float(loss.detach()), g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12, help="timed steps per form (after 2 warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            k: trainer(Path(tmp) / str(i), args.threads, **f)
            for i, (k, f) in enumerate(FORMS.items())
        }
        x, y = trainers["fp32 contiguous"].sampler.batch(10**6, 8)
        ref_loss, ref_grad = loss_and_grad(trainers["fp32 contiguous"], x, y)
        checks = {}
        for k, t in trainers.items():
            loss, g = loss_and_grad(t, x, y)
            cos = float(torch.nn.functional.cosine_similarity(g, ref_grad, dim=0))
            rel = abs(loss - ref_loss) / abs(ref_loss)
            tol = 1e-5 if t.cfg.precision == "fp32" else 1e-2
            assert rel <= tol and cos >= 0.995, f"{k}: loss off by {rel:.2e}, gradient cosine {cos}"
            checks[k] = {"loss_rel_diff": rel, "grad_cosine": cos}

        sampler = trainers["fp32 contiguous"].sampler
        batches = [sampler.batch(s, 8) for s in range(args.steps + 2)]
        rows = []
        for k, t in trainers.items():
            times = []
            for i, (bx, by) in enumerate(batches):
                t0 = time.perf_counter()
                loss = t._loss(bx, by)
                t.opt.zero_grad(set_to_none=True)
                loss.backward()
                t.opt.step()
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            rows.append({"form": k, "s_per_step": float(np.median(times)), **checks[k]})

    base = rows[0]["s_per_step"]
    print(
        f"training step, 8 × 256², shipped architecture, {args.threads} thread(s), "
        f"median of {args.steps}"
    )
    print("| form | s / step | speed-up | loss rel. diff | gradient cosine |")
    print("|---|---|---|---|---|")
    for r in rows:
        r["speedup"] = base / r["s_per_step"]
        print(
            f"| {r['form']} | {r['s_per_step']:.3f} | {r['speedup']:.2f}× "
            f"| {r['loss_rel_diff']:.1e} | {r['grad_cosine']:.5f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
