"""antema_fast: automated, fast and exact measurement of nanoparticles in TEM micrographs.

Public names are imported lazily, so that ``import antema_fast`` stays cheap and optional heavy
features (ONNX Runtime, Dask, TensorRT) load only when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._settings import Settings

__version__ = "0.1.0"

# public name -> private module that defines it
_LAZY: dict[str, str] = {
    # measurement core (C++): labelling and the particle table
    "label": ".measure",
    "measure": ".measure",
    "Particle": ".measure",
    "regionprops_table": ".measure",
    # separation and the mask -> particle table step
    "postprocess": ".separate",
    "PostprocessResult": ".separate",
    # microscope files
    "read": ".io",
    "iter_frames": ".io",
    "Micrograph": ".io",
    "ReadError": ".io",
    # segmentation
    "segment": ".segment",
    "Segmenter": ".segment",
    "Segmentation": ".segment",
    # end to end
    "analyze": ".pipeline",
    "analyze_sample": ".pipeline",
    "AnalysisResult": ".pipeline",
    "SampleResult": ".pipeline",
    # in situ movies
    "stream": ".stream",
    "FrameResult": ".stream",
}

__all__ = ["Settings", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name in ("synth", "distributed", "train", "io", "segment_models"):
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module 'antema_fast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
