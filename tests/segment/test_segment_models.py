"""Model registry: names and paths, metadata parsing and validation, hashes."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from antema_fast._preprocess import META_PAD_MULTIPLE, META_PREPROCESSING, Preprocessing
from antema_fast.segment import list_models, load_model_info
from antema_fast.segment._models import models_dir, resolve_model_path
from segment_helpers import write_test_model


def test_metadata_read_back(test_model: Path) -> None:
    info = load_model_info(test_model)
    assert info.name == "test-blur-sigmoid"
    assert info.pad_multiple == 16 and info.threshold == 0.5 and info.pixel_size_nm is None
    assert info.preprocessing == Preprocessing()
    assert info.version == "0.0-test"
    assert info.sha256 == hashlib.sha256(test_model.read_bytes()).hexdigest()
    assert info.metadata["antema.training"] == {"note": "fixed weights, test only"}
    assert info.fp16_path is None
    summary = info.summary()
    assert summary["sha256"] == info.sha256 and summary["preprocessing"]["gaussian_sigma_px"] == 2


def test_pixel_size_and_fp16_sibling(tmp_path: Path) -> None:
    path = write_test_model(tmp_path / "m.onnx", pixel_size_nm=0.25, threshold=0.4)
    shutil.copy(path, tmp_path / "m.fp16.onnx")
    info = load_model_info(path)
    assert info.pixel_size_nm == 0.25 and info.threshold == 0.4
    assert info.fp16_path == tmp_path / "m.fp16.onnx"


def test_cache_sees_replaced_file(tmp_path: Path) -> None:
    path = write_test_model(tmp_path / "m.onnx", pad_multiple=16)
    assert load_model_info(path).pad_multiple == 16
    write_test_model(tmp_path / "m2.onnx", pad_multiple=32)
    (tmp_path / "m2.onnx").replace(path)
    assert load_model_info(path).pad_multiple == 32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop_meta": (META_PREPROCESSING,)}, "expected metadata keys"),
        ({"extra_meta": {META_PAD_MULTIPLE: "zero"}}, "pad_multiple expected an integer"),
        ({"extra_meta": {"antema.threshold": "1.5"}}, "threshold expected in"),
        ({"extra_meta": {"antema.pixel_size_nm": "-1"}}, "pixel_size_nm expected > 0"),
        ({"output_name": "logits"}, "expected input 'image' and output 'probability'"),
    ],
)
def test_bad_metadata_is_named(tmp_path: Path, kwargs: dict, message: str) -> None:
    path = write_test_model(tmp_path / "bad.onnx", **kwargs)
    with pytest.raises(ValueError, match=message) as err:
        load_model_info(path)
    assert "bad.onnx" in str(err.value)


def test_not_onnx_and_missing(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        load_model_info(junk)
    with pytest.raises(FileNotFoundError, match="expected an ONNX file"):
        resolve_model_path(tmp_path / "absent.onnx")
    with pytest.raises(FileNotFoundError, match="shipped models"):
        resolve_model_path("no-such-model")


def test_registry_lists_shipped_models_without_fp16() -> None:
    names = list_models()
    folder = models_dir()
    assert all(not n.endswith(".fp16") for n in names)
    assert names == sorted(names)
    for n in names:
        assert resolve_model_path(n) == folder / f"{n}.onnx"


def test_default_model_resolves_when_shipped(shipped_model: Path) -> None:
    info = load_model_info(None)
    assert info.path == shipped_model
    assert info.pad_multiple >= 1 and 0 < info.threshold < 1
    assert "antema-unet" in list_models()
