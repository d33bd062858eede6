"""Helpers of the segmentation tests: a tiny fixed-weight ONNX model and synthetic discs.

The test model stands in for the shipped network wherever the behaviour under test does not
depend on what the network learned (padding, tiling, batching, backends, provenance). It blurs
the preprocessed image (9×9 Gaussian), average-pools 2×2, blurs again (5×5 box), upsamples 2×
and returns ``sigmoid(20 · (0.5 − y))``: dark regions of a min–max scaled bright-field image
come out as particles. Its receptive field is about ±10 px, and it needs even sizes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from antema_fast._preprocess import (
    META_METRICS,
    META_NAME,
    META_PAD_MULTIPLE,
    META_PIXEL_SIZE_NM,
    META_PREPROCESSING,
    META_THRESHOLD,
    META_TRAINING,
    META_VERSION,
    Preprocessing,
)


def _gauss_kernel(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size) - size // 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def write_test_model(
    path: Path,
    *,
    pad_multiple: int = 16,
    pixel_size_nm: float | None = None,
    threshold: float = 0.5,
    name: str = "test-blur-sigmoid",
    extra_meta: dict[str, str] | None = None,
    drop_meta: tuple[str, ...] = (),
    output_name: str = "probability",
) -> Path:
    """Write the fixed-weight test model to ``path`` and return it."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w1 = _gauss_kernel(9, 1.5)[None, None]
    w2 = np.full((1, 1, 5, 5), 1.0 / 25.0, np.float32)
    up = np.ones((1, 1, 2, 2), np.float32)
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(up, "up"),
        numpy_helper.from_array(np.array(-20.0, np.float32), "gain"),
        numpy_helper.from_array(np.array(10.0, np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["b1"], pads=[4, 4, 4, 4]),
        helper.make_node("AveragePool", ["b1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["b2"], pads=[2, 2, 2, 2]),
        helper.make_node("ConvTranspose", ["b2", "up"], ["u1"], strides=[2, 2]),
        helper.make_node("Mul", ["u1", "gain"], ["m1"]),
        helper.make_node("Add", ["m1", "bias"], ["a1"]),
        helper.make_node("Sigmoid", ["a1"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "test_blur_sigmoid",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    meta = {
        META_NAME: name,
        META_VERSION: "0.0-test",
        META_PREPROCESSING: Preprocessing().to_json(),
        META_PAD_MULTIPLE: str(pad_multiple),
        META_PIXEL_SIZE_NM: "null" if pixel_size_nm is None else repr(pixel_size_nm),
        META_METRICS: json.dumps({"iou_particle": None}),
        META_TRAINING: json.dumps({"note": "fixed weights, test only"}),
        META_THRESHOLD: repr(threshold),
    }
    meta.update(extra_meta or {})
    for key in drop_meta:
        meta.pop(key, None)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def discs(
    shape: tuple[int, int],
    seed: int,
    *,
    n: int | None = None,
    radius: tuple[float, float] = (8.0, 20.0),
    background: float = 200.0,
    particle: float = 60.0,
    noise: float = 10.0,
    gradient: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping discs on a flat (or tilted) background with Gaussian noise.

    Returns the float32 image and the true boolean mask. ``particle < background`` gives bright
    field (dark discs), ``particle > background`` HAADF (bright discs). ``gradient`` adds a linear
    ramp of that total amplitude across the columns.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    if n is None:
        n = max(1, int(h * w * 0.12 / (np.pi * np.mean(radius) ** 2)))
    mask = np.zeros(shape, bool)
    yy, xx = np.mgrid[0:h, 0:w]
    centres: list[tuple[float, float, float]] = []
    for _ in range(n * 20):
        if len(centres) >= n:
            break
        r = rng.uniform(*radius)
        cy, cx = rng.uniform(r + 2, h - r - 2), rng.uniform(r + 2, w - r - 2)
        if all((cy - y) ** 2 + (cx - x) ** 2 > (r + q + 4) ** 2 for y, x, q in centres):
            centres.append((cy, cx, r))
    for cy, cx, r in centres:
        y0, y1 = int(max(cy - r - 1, 0)), int(min(cy + r + 2, h))
        x0, x1 = int(max(cx - r - 1, 0)), int(min(cx + r + 2, w))
        sub = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        mask[y0:y1, x0:x1] |= sub
    img = np.where(mask, particle, background).astype(np.float32)
    if gradient:
        img += np.linspace(-gradient / 2, gradient / 2, w, dtype=np.float32)[None, :]
    img += rng.normal(0.0, noise, shape).astype(np.float32)
    return img, mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
