"""Training of the segmentation model (extra ``[train]``: torch, onnx, onnxconverter-common).

Submodules: :mod:`.models` (compact U-Net, DeepLabv3+ / ResNet-18, plain torch), :mod:`.data`
(synthetic + real tiles, augmentation; torch-free), :mod:`.loop` (:class:`TrainConfig`,
:class:`Trainer`), :mod:`.export` (ONNX + FP16), :mod:`.evaluate` (torch-free evaluation of an
ONNX model), :mod:`.bound` (the IoU an ideal observer could reach on a synthetic image;
torch-free). ``python -m antema_fast.train --help`` runs the same command as ``antema train``.

Torch is imported only by the submodules that need it, so ``antema_fast.train.evaluate`` and
``antema_fast.train.data`` work without the extra.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TrainConfig": ".loop",
    "Trainer": ".loop",
    "build_model": ".models",
    "export_onnx": ".export",
    "evaluate_model": ".evaluate",
}

__all__ = list(_LAZY)


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "antema_fast.train needs torch: install the extra with `pip install antema_fast[train]`"
        ) from exc


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'antema_fast.train' has no attribute {name!r}")
    if mod != ".evaluate":
        _require_torch()
    return getattr(importlib.import_module(mod, __name__), name)
