"""ONNX Runtime backend: the CPU by default, the CUDA provider when it is installed and works."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .._preprocess import INPUT_NAME, OUTPUT_NAME

log = logging.getLogger("antema_fast.segment")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def cuda_provider_available() -> bool:
    """Whether the installed ONNX Runtime build lists the CUDA execution provider."""
    import onnxruntime as ort

    return CUDA in ort.get_available_providers()


class OnnxRuntimeBackend:
    """One ONNX Runtime session over a model file; thread-safe ``run``.

    Parameters
    ----------
    path : path-like
        ONNX file with input ``image`` and output ``probability``.
    threads : int or None
        ``intra_op_num_threads`` (None: ONNX Runtime decides, one per physical core).
    device : {"cpu", "cuda"}
        ``"cuda"`` requires the CUDA provider to be active after the session is created;
        otherwise :class:`RuntimeError` says why, so that ``auto`` can fall back.

    Attributes
    ----------
    name : str
        ``"onnxruntime-cpu"`` or ``"onnxruntime-cuda"``.
    max_batch : int
        Frames or tiles per call (1 on the CPU, where batching gains nothing; 4 on CUDA).
    """

    def __init__(
        self, path: str | os.PathLike[str], threads: int | None = None, device: str = "cpu"
    ) -> None:
        import onnxruntime as ort

        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads) if threads else 0
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if device == "cuda":
            if not cuda_provider_available():
                raise RuntimeError(
                    "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
                )
            providers = [CUDA, CPU]
        else:
            providers = [CPU]
        self.session = ort.InferenceSession(os.fspath(self.path), opts, providers=providers)
        active = self.session.get_providers()
        if device == "cuda" and (not active or active[0] != CUDA):
            raise RuntimeError(
                f"onnxruntime could not start the CUDA provider (active providers: {active}); "
                "no usable GPU or CUDA libraries"
            )
        self.device = device
        self.threads = threads
        self.name = f"onnxruntime-{device}"
        self.max_batch = 4 if device == "cuda" else 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probability [N, 1, H, W] float32 for an input batch [N, 1, H, W] float32."""
        if batch.ndim != 4 or batch.shape[1] != 1:
            raise ValueError(f"expected a batch [N, 1, H, W], got shape {batch.shape}")
        x = np.ascontiguousarray(batch, dtype=np.float32)
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return np.asarray(out, dtype=np.float32)

    def info(self) -> dict[str, object]:
        """Provenance of the engine."""
        import onnxruntime as ort

        return {
            "engine": "onnxruntime",
            "onnxruntime_version": ort.__version__,
            "providers": self.session.get_providers(),
            "threads": self.threads,
            "model_file": str(self.path),
        }
