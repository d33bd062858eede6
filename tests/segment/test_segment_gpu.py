"""TensorRT on a real NVIDIA GPU: build an engine, run it, compare with ONNX Runtime.

Marked ``gpu``; skipped unless tensorrt and pycuda import and a CUDA device is present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from antema_fast import Settings
from antema_fast.segment import Segmenter
from antema_fast.segment._tensorrt import ENGINE_CACHE_ENV
from segment_helpers import discs, iou

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu() -> str:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (the [gpu] extra)")
    cuda = pytest.importorskip("pycuda.driver", reason="pycuda is not installed (the [gpu] extra)")
    try:
        cuda.init()
        if cuda.Device.count() < 1:
            pytest.skip("no CUDA device")
    except cuda.Error as exc:
        pytest.skip(f"CUDA driver unusable: {exc}")
    return str(cuda.Device(0).name())


@pytest.fixture
def engine_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv(ENGINE_CACHE_ENV, str(tmp_path / "engines"))
    return tmp_path / "engines"


def _compare(model: Path, images: list[np.ndarray], min_iou: float) -> None:
    sizes = [im.shape for im in images]
    trt_seg = Segmenter(backend="tensorrt", model=model, engine_sizes=sizes, engine_batch=2)
    ort_seg = Segmenter(Settings(threads=2), backend="onnxruntime", model=model)
    assert trt_seg.backend_name == "tensorrt"
    got = trt_seg.segment_batch(images)
    ref = ort_seg.segment_batch(images)
    for a, b in zip(got, ref, strict=True):
        assert a.mask.shape == b.mask.shape
        # FP16 engine vs FP32 ONNX Runtime: small probability differences, same masks
        assert float(np.abs(a.probability - b.probability).mean()) < 1e-2
        assert iou(a.mask, b.mask) > min_iou


def test_tensorrt_matches_onnxruntime_on_test_model(
    gpu: str, engine_cache: Path, test_model: Path
) -> None:
    images = [discs((1024, 1024), 1)[0], discs((1024, 1024), 2)[0], discs((333, 517), 3)[0]]
    _compare(test_model, images, 0.98)
    assert list(engine_cache.glob("*.engine"))


def test_tensorrt_matches_onnxruntime_on_shipped_model(
    gpu: str, engine_cache: Path, shipped_model: Path
) -> None:
    from antema_fast.synth import generate

    images = [generate(seed=s, shape=(1024, 1024), regime="tem").image for s in range(2)]
    _compare(shipped_model, images, 0.97)


def test_engine_cache_hit_on_gpu(gpu: str, engine_cache: Path, test_model: Path) -> None:
    a = Segmenter(backend="tensorrt", model=test_model)
    b = Segmenter(backend="tensorrt", model=test_model)
    assert b._engine.engine_path == a._engine.engine_path and not b._engine.built
    assert gpu in a.info()["engine"]["gpu"]


def test_auto_picks_tensorrt_on_gpu(gpu: str, engine_cache: Path, test_model: Path) -> None:
    seg = Segmenter(backend="auto", model=test_model)
    assert seg.backend_name == "tensorrt" and not seg.fallbacks
    img, truth = discs((2048, 2048), 5)
    out = seg.segment(img)
    assert out.backend == "tensorrt" and iou(out.mask, truth) > 0.85
