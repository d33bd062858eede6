"""The training loop: on-the-fly data, BCE + Dice loss, AdamW with warm-up + cosine decay,
checkpoints with resume, validation IoU in the progress line, periodic ONNX export."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._preprocess import Preprocessing
from . import data as D
from .export import export_onnx, import_onnx_weights
from .models import build_model, count_parameters

DEFAULT_PREPROCESSING = Preprocessing(
    gaussian_sigma_px=1.0, low_percentile=0.5, high_percentile=99.5, quantize_uint8=True
)


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints and in the ONNX metadata).

    Parameters
    ----------
    out_dir : str
        Where checkpoints, logs and exported models go.
    model : str
        ``"unet"`` or ``"deeplabv3plus"``.
    base : int
        U-Net base width.
    refine_blocks : int
        U-Net: residual blocks at full resolution after the refinement (see
        :class:`antema_fast.train.models.CompactUNet`); they start as the identity, so a run
        can add them to a checkpoint without them (``init_from``).
    context_blocks : int
        U-Net: residual blocks after each coarse decoder level (see
        :class:`antema_fast.train.models.CompactUNet`); they start as the identity too.
    steps : int
        Optimiser steps.
    batch : int
        Tiles per step.
    tile : int
        Tile side (px); must be a multiple of the model's padding multiple.
    lr, weight_decay : float
        AdamW settings; the learning rate warms up linearly for ``warmup`` steps, then follows a
        cosine decay to ``lr * final_lr_fraction``.
    real : list of str
        Folders of real image + mask pairs. A folder named ``msaem`` is split with
        :data:`antema_fast.train.data.MSAEM_VALIDATION` (held out); other folders train fully.
    real_fraction : float
        Expected fraction of real tiles per batch.
    regime_weights : list of float or None
        Probabilities of the synthetic regimes (in the order of ``antema_fast.synth.REGIMES``);
        None uses ``synth.generate(regime="mixed")``'s own mix.
    synthetic_photometric : bool
        Brightness / contrast / gamma augmentation after preprocessing on synthetic tiles as
        well as real ones (default); off, synthetic tiles reach the model exactly as inference's
        preprocessing makes them (:class:`antema_fast.train.data.BatchSampler`).
    seed : int
        Seed of weights, batches and validation set.
    threads : int
        torch intra-op threads.
    time_budget_min : float or None
        Wall-clock budget: the run ends when ``steps`` or this budget is reached, whichever is
        first, and the cosine decay follows whichever is further along (so a time-limited run
        still ends at the low learning rate).
    init_from : str or None
        Checkpoint, or ONNX file written by this package (a shipped model), whose model weights
        start the run (a second, fine-tuning phase); the optimiser and schedule start fresh. An
        ONNX file's folded batch norms are rebuilt with statistics measured on a few training
        batches (:func:`antema_fast.train.export.import_onnx_weights`). A checkpoint in
        ``out_dir`` (resume) takes precedence.
    loss : str
        ``"bce-dice"`` (binary cross-entropy + soft Dice) or ``"bce-lovasz"`` (binary
        cross-entropy + the Lovász hinge, a surrogate of the pooled IoU); see :data:`LOSSES`.
    gap_weight, gap_sigma_px : float
        Weigh the cross-entropy of each pixel by U-Net's map for touching objects,
        ``1 + gap_weight·exp(−(d1 + d2)²/(2·gap_sigma_px²))`` on background pixels at
        distances d1 and d2 from the two nearest particles
        (:func:`antema_fast.train.data.gap_weights`): the gaps and notches where particles meet,
        which decide whether they can be separated. 0 (default) turns it off.
    sparse_fraction : float
        Fraction of the synthetic tiles drawn as sparse fields, a few particles or none on
        wide support (``synth.generate(sparse=True)``): they teach the model that support
        texture stretched to full contrast is not a particle. 0 (default) turns it off and
        leaves the batches unchanged.
    precision : str
        ``"fp32"`` (default) or ``"bf16"``: the training forward pass under
        ``torch.autocast("cpu", bfloat16)`` (convolutions in bfloat16, weights, optimiser state,
        loss, validation and export in float32). About 2× faster on CPUs with AVX-512 BF16 or
        AMX; on others it may be slower.
    channels_last : bool
        Keep weights and batches in the channels-last memory layout (the same numbers up to
        rounding, faster convolutions in oneDNN on CPUs); on by default.
    ema : float
        Decay of an exponential moving average of the weights (Polyak averaging; batch-norm
        statistics are averaged too), e.g. 0.999 ≈ the last 1,000 steps; 0 turns it off. When
        on, validation, ``best.pt`` and every exported model use the averaged weights, and the
        checkpoint stores them beside the raw ones (resume continues the average).
    device : str
        Where the model trains: ``"cpu"`` (default), ``"cuda"`` / ``"cuda:N"``, or ``"auto"``
        (CUDA when torch sees a GPU). Checkpoints, ``best.pt`` and exports are the same on
        either (loaded on the CPU, exported from a CPU copy); under ``precision="bf16"`` the
        forward pass autocasts on that device.
    data_workers : int
        Processes that draw the batches ahead of the training step
        (:class:`antema_fast.train.data.BatchPrefetcher`); 0 (default) draws them in the
        training process. The batches are the same either way (each depends on the seed and
        the step alone), so a run is reproducible across this setting. Worth it when a step is
        faster than drawing a batch of synthetic tiles (a GPU beside several cores); on a
        2-core CPU the drawing competes with the step.
    """

    out_dir: str = "train_run"
    model: str = "unet"
    base: int = 16
    refine_blocks: int = 0
    context_blocks: int = 0
    steps: int = 3000
    batch: int = 8
    tile: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    final_lr_fraction: float = 0.02
    real: list[str] = field(default_factory=list)
    real_fraction: float = 0.3
    regime_weights: list[float] | None = None
    synthetic_photometric: bool = True
    seed: int = 0
    threads: int = 2
    checkpoint_every: int = 100
    validate_every: int = 100
    export_every: int = 500
    time_budget_min: float | None = None
    init_from: str | None = None
    loss: str = "bce-dice"
    gap_weight: float = 0.0
    gap_sigma_px: float = 3.0
    sparse_fraction: float = 0.0
    precision: str = "fp32"
    channels_last: bool = True
    ema: float = 0.0
    device: str = "cpu"
    data_workers: int = 0
    val_synthetic: int = 3
    name: str = "antema-unet"
    preprocessing: dict[str, Any] = field(
        default_factory=lambda: dataclasses.asdict(DEFAULT_PREPROCESSING)
    )

    def model_kwargs(self) -> dict[str, Any]:
        if self.model != "unet":
            return {}
        return {
            "base": self.base,
            "refine_blocks": self.refine_blocks,
            "context_blocks": self.context_blocks,
        }


def _progress(cfg: TrainConfig, step: int, wall_s: float) -> float:
    """Fraction of the run done: by steps, or by wall-clock time when a budget is set."""
    p = step / max(cfg.steps, 1)
    if cfg.time_budget_min is not None:
        p = max(p, wall_s / (60.0 * cfg.time_budget_min))
    return min(p, 1.0)


def _lr(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then cosine decay over the run's progress."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p0 = cfg.warmup / max(cfg.steps, 1)
    t = (progress - p0) / max(1.0 - p0, 1e-9)
    lo = cfg.lr * cfg.final_lr_fraction
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


def _split_target(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Targets ``[N, 1, H, W]``, or ``[N, 2, H, W]`` with per-pixel loss weights
    (``TrainConfig.gap_weight``): ``(target, weight or None)``."""
    if target.shape[1] == 2:
        return target[:, :1], target[:, 1:]
    return target, None


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy (weighted per pixel when the target carries weights) + (1 − soft
    Dice) of the particle class, per batch."""
    target, weight = _split_target(target)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    dice = (2 * inter + 1.0) / (p.sum() + target.sum() + 1.0)
    return bce + (1 - dice)


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovász hinge of the particle class over the whole batch (Berman et al., CVPR 2018).

    A convex surrogate of 1 − IoU pooled over every pixel of the batch, the quantity the
    model is judged by: each pixel's hinge error ``1 − logit·sign`` (sign +1 particle, −1
    background) is weighted by how much the IoU loss grows when that pixel is added, in order
    of decreasing error (the gradient of the Lovász extension of the Jaccard loss). The
    decision boundary is logit 0 (probability 0.5).
    """
    z = logits.reshape(-1)
    t = target.reshape(-1)
    errors = 1.0 - z * (2.0 * t - 1.0)
    errors, order = torch.sort(errors, descending=True)
    t = t[order]
    positives = t.sum()
    # Jaccard loss of the k pixels with the largest errors taken as the wrong ones
    intersection = positives - t.cumsum(0)
    union = positives + (1.0 - t).cumsum(0)
    jaccard = 1.0 - intersection / union.clamp(min=1.0)
    grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return torch.dot(F.relu(errors), grad.detach())


def _bce_lovasz(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    target, weight = _split_target(target)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
    return bce + lovasz_hinge(logits, target)


LOSSES = {"bce-dice": loss_fn, "bce-lovasz": _bce_lovasz}


#: Training precisions (``TrainConfig.precision``) and the autocast dtype of each.
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """``TrainConfig.device`` as a :class:`torch.device`: ``"auto"`` is CUDA when available;
    a CUDA device that torch cannot use is an error that says so."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev: torch.device | None = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got {name!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device: {name!r} asked for, but this torch ({torch.__version__}) sees no CUDA "
                "GPU (a CPU-only build, or no driver); use 'cpu' or 'auto'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {name!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)"
            )
    return dev


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _pad_to(x: np.ndarray, m: int) -> np.ndarray:
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode="reflect")
    return x


class Trainer:
    """Runs a :class:`TrainConfig`; resumes from ``out_dir/checkpoint.pt`` when present."""

    def __init__(self, cfg: TrainConfig, log: Any = None) -> None:
        self.cfg = cfg
        self.log = log or sys.stdout
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(max(int(cfg.threads), 1))
        torch.manual_seed(cfg.seed)
        if cfg.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {sorted(LOSSES)}, got {cfg.loss!r}")
        if cfg.precision not in PRECISIONS:
            raise ValueError(
                f"precision: expected one of {sorted(PRECISIONS)}, got {cfg.precision!r}"
            )
        if not (isinstance(cfg.ema, (int, float)) and 0.0 <= cfg.ema < 1.0):
            raise ValueError(f"ema: expected a decay in [0, 1), got {cfg.ema!r}")
        if not (isinstance(cfg.data_workers, int) and cfg.data_workers >= 0):
            raise ValueError(f"data_workers: expected an integer ≥ 0, got {cfg.data_workers!r}")
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed tile size: pick the fastest kernels
        self.pre = Preprocessing(**cfg.preprocessing)
        self.model = build_model(cfg.model, **cfg.model_kwargs())
        pm = int(getattr(self.model, "pad_multiple", 32))
        if cfg.tile % pm:
            raise ValueError(f"tile: expected a multiple of {pm} for {cfg.model!r}, got {cfg.tile}")
        self.pad_multiple = pm
        # the layout before the optimiser and the average are made: both follow the parameters
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model.to(self.device)
        self.model.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.step = 0
        self.elapsed = 0.0  # seconds in optimiser steps
        self.wall = 0.0  # wall-clock seconds of the run, validation and export included
        self.history: list[dict[str, float]] = []
        train_real: list[D.LabelledImage] = []
        self.val_real: list[D.LabelledImage] = []
        self.real_summary: list[dict[str, Any]] = []
        for folder in cfg.real:
            items = D.load_pairs(folder)
            if Path(folder).name == "msaem":
                tr, va = D.split_msaem(items)
            else:
                tr, va = items, []
            train_real += tr
            self.val_real += va
            self.real_summary.append(
                {
                    "folder": Path(folder).name,
                    "train": [it.name for it in tr],
                    "validation": [it.name for it in va],
                }
            )
        self.sampler = D.BatchSampler(
            self.pre,
            cfg.tile,
            train_real,
            cfg.real_fraction if train_real else 0.0,
            cfg.seed,
            regime_weights=cfg.regime_weights,
            synthetic_photometric=cfg.synthetic_photometric,
            gap_weight=cfg.gap_weight,
            gap_sigma_px=cfg.gap_sigma_px,
            sparse_fraction=cfg.sparse_fraction,
        )
        self.val_synth = D.synthetic_set(cfg.val_synthetic, cfg.tile, cfg.seed + 777)
        self.best = -1.0
        self._ema_start = 0
        # the averaged copy starts at the initial weights (set again after init or resume)
        self.ema_model: torch.nn.Module | None = copy.deepcopy(self.model) if cfg.ema else None
        ck = self.out / "checkpoint.pt"
        if ck.exists():  # resume: the checkpoint's weights replace any init_from
            self.load(ck)
        elif cfg.init_from:  # fine-tuning: weights only, fresh optimiser and schedule
            self._init_weights(Path(cfg.init_from))
            if self.ema_model is not None:
                self.ema_model.load_state_dict(self.model.state_dict())

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights that are validated and exported: the average when ``ema`` is on."""
        return self.ema_model if self.ema_model is not None else self.model

    @torch.no_grad()
    def _update_ema(self) -> None:
        """Move the average towards the current weights; the decay ramps up as
        ``(1 + k) / (10 + k)`` over the run's first steps so early weights do not linger."""
        if self.ema_model is None:
            return
        k = self.step - self._ema_start
        d = min(float(self.cfg.ema), (1.0 + k) / (10.0 + k))
        cur = self.model.state_dict()
        for name, v in self.ema_model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(cur[name].detach(), alpha=1.0 - d)
            else:
                v.copy_(cur[name])

    def _init_weights(self, path: Path) -> None:
        """Weights of a checkpoint (its averaged weights when it has them: those are the ones
        validated and exported) or ONNX file; modules the file lacks keep their initialisation
        only if they are new blocks that start as the identity (``model.identity_start``)."""
        new_ok = tuple(getattr(self.model, "identity_start", ()))
        if path.suffix == ".onnx":
            # batches far beyond any run's steps: not the ones training will draw
            calib = (self.sampler.batch(10**9 + i, self.cfg.batch)[0] for i in range(4))
            n = import_onnx_weights(self.model, path, calib, new_ok=new_ok)
            print(f"init from {path}: {n} convolutions, batch norms recalibrated", file=self.log)
            return
        st = torch.load(path, map_location="cpu", weights_only=False)
        res = self.model.load_state_dict(st.get("ema_model") or st["model"], strict=False)
        foreign = [k for k in res.missing_keys if not k.startswith(new_ok)]
        if res.unexpected_keys or foreign:
            raise ValueError(
                f"{path}: checkpoint does not fit the model {self.cfg.model!r} "
                f"(missing {foreign[:5]}, unexpected {res.unexpected_keys[:5]})"
            )
        if res.missing_keys:
            n = len({k.split(".body.")[0] for k in res.missing_keys})  # e.g. context.0.0
            print(f"init from {path}: {n} new block(s) starting as the identity", file=self.log)

    # -- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.cfg),
            "model": self.model.state_dict(),
            "ema_model": self.ema_model.state_dict() if self.ema_model is not None else None,
            "ema_start": self._ema_start,
            "optimizer": self.opt.state_dict(),
            "scheduler": {
                "kind": "warmup-cosine",
                "progress": _progress(self.cfg, self.step, self.wall),
                "wall_seconds": self.wall,
                "lr": self.opt.param_groups[0]["lr"],
            },
            "step": self.step,
            "elapsed": self.elapsed,
            "history": self.history,
            "best": self.best,
            "torch_rng": torch.get_rng_state(),
            # batches are drawn from default_rng([seed, step]): the step is the data RNG state
            "data_rng": {"seed": self.cfg.seed, "next_step": self.step},
        }

    def save(self, path: Path | None = None) -> Path:
        path = path or self.out / "checkpoint.pt"
        _atomic_save(self.state(), path)
        return path

    def load(self, path: Path) -> None:
        st = torch.load(path, map_location="cpu", weights_only=False)
        if st["config"]["model"] != self.cfg.model:
            raise ValueError(
                f"{path}: checkpoint is for model {st['config']['model']!r}, "
                f"config asks for {self.cfg.model!r}"
            )
        self.model.load_state_dict(st["model"])
        if self.ema_model is not None:
            # a checkpoint written without the average starts it here, at its weights
            self.ema_model.load_state_dict(st.get("ema_model") or st["model"])
            self._ema_start = (
                int(st.get("ema_start", 0)) if st.get("ema_model") else int(st["step"])
            )
        self.opt.load_state_dict(st["optimizer"])
        self.wall = float(st.get("scheduler", {}).get("wall_seconds", 0.0))
        self.step = int(st["step"])
        self.elapsed = float(st.get("elapsed", 0.0))
        self.history = list(st.get("history", []))
        self.best = float(st.get("best", -1.0))
        torch.set_rng_state(st["torch_rng"])
        print(f"resumed from {path} at step {self.step}", file=self.log, flush=True)

    # -- validation ---------------------------------------------------------------------------
    @torch.no_grad()
    def _predict(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape
        xp = _pad_to(x[None, None], self.pad_multiple)
        xt = torch.from_numpy(np.ascontiguousarray(xp)).to(self.device)
        logits = self.eval_model(xt.to(memory_format=self.memory_format))
        return logits[0, 0, :h, :w].float().cpu().numpy() > 0.0

    def validate(self) -> dict[str, float]:
        from .. import metrics as M

        net = self.eval_model
        was = net.training
        net.eval()
        try:
            c = np.zeros((2, 2), np.int64)
            for _, s in self.val_synth:
                c += M.confusion_counts(self._predict(self.pre.apply(s.image)), s.semantic)
            out = {"val_iou_synthetic": float(M.metrics_from_confusion(c)["iou"][1])}  # type: ignore[index]
            if self.val_real:
                c = np.zeros((2, 2), np.int64)
                for it in self.val_real:
                    c += M.confusion_counts(self._predict(self.pre.apply(it.image)), it.mask)
                out["val_iou_real"] = float(M.metrics_from_confusion(c)["iou"][1])  # type: ignore[index]
        finally:
            net.train(was)
        return out

    # -- export -------------------------------------------------------------------------------
    def export(self, path: Path, metrics: dict[str, Any] | None = None) -> Path:
        training = {
            "config": dataclasses.asdict(self.cfg),
            "steps_done": self.step,
            "train_seconds": round(self.elapsed, 1),
            "wall_seconds": round(self.wall, 1),
            "parameters": count_parameters(self.model),
            "weights": f"exponential moving average, decay {self.cfg.ema}"
            if self.ema_model is not None
            else "last step",
            "data": {
                "synthetic": "antema_fast.synth.generate(regime='mixed'), on the fly",
                "real": self.real_summary,
            },
        }
        return export_onnx(
            self.eval_model,
            path,
            preprocessing=self.pre,
            pad_multiple=self.pad_multiple,
            name=self.cfg.name,
            metrics=metrics or (self.history[-1] if self.history else {}),
            training=training,
        )

    # -- loop ---------------------------------------------------------------------------------
    def _loss(self, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
        """The training loss of one batch (forward pass in ``cfg.precision``, loss in float32)."""
        dtype = PRECISIONS[self.cfg.precision]
        xt = torch.from_numpy(x).to(self.device, memory_format=self.memory_format)
        yt = torch.from_numpy(y).to(self.device, non_blocking=True)
        with torch.autocast(
            self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None
        ):
            logits = self.model(xt)
        return LOSSES[self.cfg.loss](logits.float(), yt)

    def run(self, until_step: int | None = None) -> dict[str, Any]:
        """Train to the end (or stop after ``until_step`` steps, saving a checkpoint but
        exporting nothing, as an interruption would); returns a summary dict."""
        cfg = self.cfg
        self.model.train()
        t_last = time.perf_counter()
        t_prev = time.perf_counter()
        prefetch = (
            D.BatchPrefetcher(self.sampler, cfg.batch, cfg.data_workers)
            if cfg.data_workers > 0
            else None
        )
        try:
            return self._run(until_step, prefetch, t_last, t_prev)
        finally:
            if prefetch is not None:
                prefetch.close()

    def _run(
        self,
        until_step: int | None,
        prefetch: D.BatchPrefetcher | None,
        t_last: float,
        t_prev: float,
    ) -> dict[str, Any]:
        cfg = self.cfg
        loss_ema = math.nan
        while _progress(cfg, self.step, self.wall) < 1.0:
            if until_step is not None and self.step >= until_step:
                self.save()
                return {"steps": self.step, "train_seconds": self.elapsed, "onnx": None}
            t0 = time.perf_counter()
            lr = _lr(cfg, self.step, _progress(cfg, self.step, self.wall))
            for g in self.opt.param_groups:
                g["lr"] = lr
            if prefetch is not None:
                x, y = prefetch.batch(self.step)
            else:
                x, y = self.sampler.batch(self.step, cfg.batch)
            loss = self._loss(x, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
            self._update_ema()
            dt = time.perf_counter() - t0
            self.elapsed += dt
            lv = float(loss.detach())
            loss_ema = lv if math.isnan(loss_ema) else 0.95 * loss_ema + 0.05 * lv
            rec: dict[str, float] = {}
            now = time.perf_counter()
            self.wall += now - t_prev
            t_prev = now
            last = _progress(cfg, self.step, self.wall) >= 1.0
            if self.step % cfg.validate_every == 0 or last:
                rec = {"step": self.step, "loss": round(loss_ema, 4), **self.validate()}
                self.history.append(rec)
                score = float(np.mean([v for k, v in rec.items() if k.startswith("val_")]))
                if score > self.best:
                    self.best = score
                    _atomic_save(
                        {"model": self.eval_model.state_dict(), "step": self.step, "metrics": rec},
                        self.out / "best.pt",
                    )
            if rec or time.perf_counter() - t_last > 30:
                t_last = time.perf_counter()
                done = _progress(cfg, self.step, self.wall)
                bar = "#" * int(20 * done) + "." * (20 - int(20 * done))
                eta = self.wall * (1.0 - done) / max(done, 1e-9)
                val = " ".join(f"{k[8:]} {v:.3f}" for k, v in rec.items() if k.startswith("val_"))
                print(
                    f"[{bar}] step {self.step}/{cfg.steps} loss {loss_ema:.4f} "
                    f"lr {lr:.2e} {dt:.2f} s/step "
                    f"eta {eta / 60:.0f} min" + (f" | val IoU {val}" if val else ""),
                    file=self.log,
                    flush=True,
                )
            if self.step % cfg.checkpoint_every == 0 or last:
                self.save()
            if self.step % cfg.export_every == 0 and not last:
                self.export(self.out / f"{cfg.name}-step{self.step}.onnx")
                self.export(self.out / f"{cfg.name}-latest.onnx")
        final = self.out / f"{cfg.name}.onnx"
        self.export(final)
        summary = {
            "steps": self.step,
            "train_seconds": self.elapsed,
            "wall_seconds": self.wall,
            "history": self.history,
            "onnx": str(final),
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
