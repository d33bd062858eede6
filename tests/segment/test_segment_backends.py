"""Backend choice: ``auto`` falls back and says why; explicit backends fail loudly; resampling."""

from __future__ import annotations

import logging
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from antema_fast import Settings
from antema_fast.cli import main
from antema_fast.segment import Segmenter, _onnx
from segment_helpers import discs, iou, write_test_model


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import tensorrt`` fail, whatever is installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def test_auto_falls_back_to_onnxruntime_cpu_and_says_so(
    no_tensorrt: None, test_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="antema_fast.segment"):
        seg = Segmenter(backend="auto", model=test_model)
    if _onnx.cuda_provider_available():
        pytest.skip("onnxruntime-gpu is installed here; the CPU fallback is not reached")
    assert seg.backend_name == "onnxruntime-cpu"
    assert len(seg.fallbacks) == 2
    assert "TensorRT unavailable" in seg.fallbacks[0] and "[gpu]" in seg.fallbacks[0]
    assert "no CUDA provider" in seg.fallbacks[1]
    text = caplog.text
    assert "TensorRT unavailable" in text and "backend onnxruntime-cpu (requested auto)" in text
    img, truth = discs((256, 256), 3)
    out = seg.segment(img)
    assert out.backend == "onnxruntime-cpu"
    assert iou(out.mask, truth) > 0.85
    info = seg.info()
    assert info["requested_backend"] == "auto" and info["fallbacks"] == seg.fallbacks


def test_auto_is_the_settings_default(no_tensorrt: None, test_model: Path) -> None:
    seg = Segmenter(Settings(model=str(test_model)))
    assert seg.requested_backend == "auto" and seg.fallbacks
    assert seg.model_name == "test-blur-sigmoid"


def test_explicit_tensorrt_raises_with_the_extra(no_tensorrt: None, test_model: Path) -> None:
    with pytest.raises(ImportError, match=r"\[gpu\] extra"):
        Segmenter(backend="tensorrt", model=test_model)


def _fake_gpu_modules(monkeypatch: pytest.MonkeyPatch, devices: int) -> None:
    """tensorrt and pycuda that import, on a machine with ``devices`` GPUs."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "0.0-fake"  # type: ignore[attr-defined]
    cuda = types.ModuleType("pycuda.driver")
    cuda.init = lambda: None  # type: ignore[attr-defined]

    class Device:
        @staticmethod
        def count() -> int:
            return devices

    cuda.Device = Device  # type: ignore[attr-defined]
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = cuda  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)


def test_auto_falls_back_when_tensorrt_imports_but_no_gpu(
    monkeypatch: pytest.MonkeyPatch, test_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_gpu_modules(monkeypatch, devices=0)
    with caplog.at_level(logging.INFO, logger="antema_fast.segment"):
        seg = Segmenter(backend="auto", model=test_model)
    assert seg.backend_name.startswith("onnxruntime")
    assert "TensorRT failed" in seg.fallbacks[0] and "found 0 device" in seg.fallbacks[0]
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    with pytest.raises(RuntimeError, match="found 0 device"):
        Segmenter(backend="tensorrt", model=test_model)


def test_auto_falls_back_when_the_cuda_provider_does_not_start(
    no_tensorrt: None, monkeypatch: pytest.MonkeyPatch, test_model: Path
) -> None:
    # onnxruntime-gpu installed on a machine without a usable GPU: the session ends up on the CPU
    monkeypatch.setattr(_onnx, "cuda_provider_available", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnxruntime warns that the provider is not available
        seg = Segmenter(backend="auto", model=test_model)
    assert seg.backend_name == "onnxruntime-cpu"
    assert "ONNX Runtime CUDA failed" in seg.fallbacks[1]


def test_explicit_onnxruntime_skips_tensorrt(test_model: Path) -> None:
    seg = Segmenter(backend="onnxruntime", model=test_model)
    assert not any("TensorRT" in f for f in seg.fallbacks)


def test_unknown_backend_and_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backend: expected one of"):
        Segmenter(backend="torch")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="backend='threshold'"):
        Segmenter(backend="onnxruntime", model="no-such-model")


def test_resampling_to_the_model_pixel_size(tmp_path: Path) -> None:
    path = write_test_model(tmp_path / "px.onnx", pixel_size_nm=0.5)
    seg = Segmenter(backend="onnxruntime", model=path)
    img, truth = discs((600, 640), 4, radius=(16.0, 30.0))
    calls: list[tuple[int, ...]] = []
    inner = seg._engine.run

    def spy(b: np.ndarray) -> np.ndarray:
        calls.append(b.shape)
        return inner(b)

    seg._engine.run = spy  # type: ignore[method-assign]
    out = seg.segment(img, pixel_size_nm=0.25)  # twice as fine as the model: halve the image
    assert out.extra["resampled_shape"] == (300, 320)
    assert calls == [(1, 1, 304, 320)]  # 300 padded to the multiple 16
    assert out.mask.shape == img.shape
    assert iou(out.mask, truth) > 0.85
    same = seg.segment(img, pixel_size_nm=0.502)  # within 1 %: not resampled
    assert same.extra["resampled_shape"] == img.shape
    none = seg.segment(img)  # no pixel size given: not resampled
    assert none.extra["resampled_shape"] == img.shape


def test_cli_engine_build_without_tensorrt(
    no_tensorrt: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["engine", "build", "--sizes", "1024x1024,2048x2048", "--batch", "2"]) == 1
    err = capsys.readouterr().err
    assert "antema engine build" in err and "[gpu]" in err and "tensorrt" in err


def test_cli_engine_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["engine", "build", "--sizes", "1024by1024"]) == 2
    assert "HEIGHTxWIDTH" in capsys.readouterr().err
    assert main(["engine"]) == 2
