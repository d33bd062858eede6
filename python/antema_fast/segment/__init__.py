"""Segmentation of micrographs into particle masks.

Public API: :func:`segment`, :class:`Segmenter`, :class:`Segmentation`. Backends: ONNX Runtime
(CPU by default, CUDA when available), TensorRT (the ``[gpu]`` extra) and a classical
``threshold`` baseline; ``auto`` picks the fastest that works and records why.
"""

from __future__ import annotations

from ._models import DEFAULT_MODEL, ModelInfo, list_models, load_model_info
from ._segmenter import Segmentation, Segmenter, segment

__all__ = [
    "DEFAULT_MODEL",
    "ModelInfo",
    "Segmentation",
    "Segmenter",
    "list_models",
    "load_model_info",
    "segment",
]
