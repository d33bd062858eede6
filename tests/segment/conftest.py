"""Fixtures of the segmentation tests (helpers live in ``segment_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from antema_fast.segment._models import models_dir
from segment_helpers import write_test_model


@pytest.fixture(scope="session")
def test_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the fixed-weight test model (pad multiple 16, no pixel size)."""
    return write_test_model(tmp_path_factory.mktemp("models") / "test-blur-sigmoid.onnx")


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    """Path of the shipped default model; skips while it has not been trained and committed."""
    path = models_dir() / "antema-unet.onnx"
    if not path.is_file():
        pytest.skip(f"the shipped model {path} is absent (it is produced by the training issue)")
    return path
