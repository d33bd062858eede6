"""compare_models / antema compare: several models on the same fresh synthetic fields, each at
its stored threshold, with paired bootstrap intervals of their differences from the first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from antema_fast import synth
from antema_fast.train.evaluate import calibrate_threshold, compare_models

onnx = pytest.importorskip("onnx")

SHIPPED = (
    Path(__file__).resolve().parents[1] / "python" / "antema_fast" / "models" / "antema-unet.onnx"
)


def with_threshold(src: Path, threshold: float, dst: Path) -> Path:
    m = onnx.load(str(src))
    for p in m.metadata_props:
        if p.key == "antema.threshold":
            p.value = repr(threshold)
    onnx.save(m, str(dst))
    return dst


def test_a_model_against_itself_and_against_a_worse_copy(tmp_path) -> None:
    worse = with_threshold(SHIPPED, 0.95, tmp_path / "worse.onnx")
    rep = compare_models(
        [SHIPPED, SHIPPED, worse], seeds=(5, 6), synthetic_per_regime=2, threads=1, bootstrap=300
    )
    assert rep["fields"] == {"5": 2 * len(synth.REGIMES), "6": 2 * len(synth.REGIMES)}
    assert rep["thresholds"][2] == 0.95
    ref, same, bad = rep["iou"]
    assert same == ref  # the same model on the same fields
    d_same, d_bad = rep["difference"]
    assert d_same["all"] == 0.0 and d_same["ci95"] == [0.0, 0.0]
    # a threshold of 0.95 drops the boundary pixels: clearly worse, and the interval says so
    assert d_bad["all"] < -0.02 and d_bad["ci95"][1] < 0 and d_bad["ci95"][0] <= d_bad["all"]
    assert list(ref["regimes"]) == list(synth.REGIMES)
    # each seed's pooled IoU is what calibrate_threshold measures at the stored threshold
    for seed in (5, 6):
        cal = calibrate_threshold(SHIPPED, synthetic_per_regime=2, synthetic_seed=seed, threads=1)
        assert ref["seeds"][str(seed)] == pytest.approx(cal["iou_at_model"], abs=1e-12)
    # the pooled IoU over both seeds lies between the seeds' own
    lo, hi = sorted(ref["seeds"].values())
    assert lo <= ref["all"] <= hi
    with pytest.raises(ValueError, match="model_paths"):
        compare_models([], seeds=(5,))


def test_cli_compare_writes_the_report(tmp_path, capsys) -> None:
    from antema_fast.cli import main

    worse = with_threshold(SHIPPED, 0.9, tmp_path / "worse.onnx")
    out = tmp_path / "cmp.json"
    args = ["compare", str(SHIPPED), str(worse), "--seeds", "3", "--per-regime", "1"]
    assert main([*args, "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 fields (seeds 3)" in text and "95 % CI" in text
    rep = json.loads(out.read_text())
    assert rep["models"] == [str(SHIPPED), str(worse)]
    assert np.isfinite(rep["difference"][0]["all"])


def test_cli_evaluate_writes_its_report(tmp_path, capsys) -> None:
    from antema_fast.cli import main

    out = tmp_path / "eval.json"
    args = ["evaluate", str(SHIPPED), "--synthetic", "1", "--timing-size", "0", "--threads", "1"]
    assert main([*args, "--worst-fields", "2", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == rep
    assert rep["model"] == str(SHIPPED) and set(rep["synthetic"]) == {"all", *synth.REGIMES}
    assert len(rep["synthetic"]["all"]["worst_fields"]) == 2
    assert not list(tmp_path.glob("*.tmp*"))  # written whole, no temporary left
