"""ONNX export: probability output (sigmoid in the graph), dynamic batch/height/width, the
preprocessing recipe and training summary in the metadata, and an FP16 sibling."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from .._preprocess import (
    INPUT_NAME,
    META_METRICS,
    META_NAME,
    META_PAD_MULTIPLE,
    META_PIXEL_SIZE_NM,
    META_PREPROCESSING,
    META_THRESHOLD,
    META_TRAINING,
    META_VERSION,
    OUTPUT_NAME,
    Preprocessing,
)
from .models import WithSigmoid

OPSET = 17


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    preprocessing: Preprocessing,
    pad_multiple: int,
    name: str = "antema-unet",
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    threshold: float = 0.5,
    pixel_size_nm: float | None = None,
    fp16: bool = True,
) -> Path:
    """Write ``path`` (FP32) and, with ``fp16``, ``<stem>.fp16.onnx`` beside it.

    The graph has input ``image`` ``[N, 1, H, W]`` float32 and output ``probability``
    ``[N, 1, H, W]`` float32 with dynamic N, H, W; H and W must be multiples of
    ``pad_multiple``. Metadata keys are those of :mod:`antema_fast._preprocess`.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = WithSigmoid(copy.deepcopy(model)).eval()
    dummy = torch.zeros(1, 1, 2 * pad_multiple, 2 * pad_multiple)
    tmp = path.with_suffix(".tmp.onnx")
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo, which needs packages we
        # do not depend on; it is still the one that exports these graphs offline and exactly
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (dummy,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    m = onnx.load(str(tmp))
    tmp.unlink()
    meta = {
        META_NAME: name,
        META_VERSION: __version__,
        META_PREPROCESSING: preprocessing.to_json(),
        META_PAD_MULTIPLE: str(int(pad_multiple)),
        META_PIXEL_SIZE_NM: "null" if pixel_size_nm is None else repr(float(pixel_size_nm)),
        META_METRICS: json.dumps(metrics or {}, sort_keys=True),
        META_TRAINING: json.dumps(training or {}, sort_keys=True),
        META_THRESHOLD: repr(float(threshold)),
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "antema_fast"
    m.producer_version = __version__
    onnx.checker.check_model(m)
    out_tmp = path.with_suffix(".part")
    onnx.save(m, str(out_tmp))
    out_tmp.replace(path)
    if fp16:
        import warnings

        from onnxconverter_common import float16

        with warnings.catch_warnings():  # "float32 number … truncated": tiny weights → 1e-7
            warnings.simplefilter("ignore", UserWarning)
            m16 = float16.convert_float_to_float16(m, keep_io_types=True)
        p16 = path.with_name(path.stem + ".fp16.onnx")
        part = p16.with_suffix(".part")
        onnx.save(m16, str(part))
        part.replace(p16)
    return path


def onnx_matches_torch(
    model: nn.Module, path: str | Path, x: np.ndarray, atol: float = 1e-4
) -> float:
    """Max |ORT − torch| of the probabilities on ``x`` (raises if above ``atol``)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})[0]
    with torch.no_grad():
        ref = WithSigmoid(model).eval()(torch.from_numpy(x.astype(np.float32))).numpy()
    err = float(np.abs(got - ref).max())
    if err > atol:
        raise AssertionError(f"{path}: ONNX Runtime differs from torch by {err:.3g} > {atol}")
    return err
