"""Training smoke test: steps → checkpoint → resume → ONNX export → ONNX Runtime matches torch."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxconverter_common")

from antema_fast._preprocess import (  # noqa: E402
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
from antema_fast.train.data import BatchSampler, load_pairs, split_msaem  # noqa: E402
from antema_fast.train.export import onnx_matches_torch  # noqa: E402
from antema_fast.train.loop import DEFAULT_PREPROCESSING, TrainConfig, Trainer  # noqa: E402
from antema_fast.train.models import build_model, count_parameters  # noqa: E402


def _write_pairs(folder: Path, n: int = 3) -> None:
    import cv2
    from antema_fast.synth import generate, to_uint16

    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for k in range(n):
        s = generate(k, (96, 96), "tem")
        cv2.imwrite(
            str(folder / "images" / f"image_{k}.png"), (to_uint16(s.image) >> 8).astype(np.uint8)
        )
        cv2.imwrite(str(folder / "labels" / f"label_{k}.png"), s.semantic.astype(np.uint8) * 255)


def _cfg(out: Path, real: list[str], steps: int) -> TrainConfig:
    return TrainConfig(
        out_dir=str(out),
        base=8,
        steps=steps,
        batch=2,
        tile=64,
        warmup=1,
        real=real,
        real_fraction=0.5,
        seed=3,
        threads=1,
        checkpoint_every=2,
        validate_every=2,
        export_every=1000,
        val_synthetic=1,
    )


def test_models_by_name_and_padding() -> None:
    unet = build_model("unet", base=8)
    assert unet.pad_multiple == 32
    x = torch.zeros(2, 1, 64, 96)
    assert unet(x).shape == (2, 1, 64, 96)
    assert 1_500_000 < count_parameters(build_model("unet")) < 2_500_000
    dl = build_model("deeplabv3plus")
    assert dl(torch.zeros(1, 1, 32, 48)).shape == (1, 1, 32, 48)
    with pytest.raises(ValueError, match="model name"):
        build_model("resnet")


@pytest.mark.parametrize(
    ("extra", "block"),
    [
        ({"refine_blocks": 2}, lambda m: m.post[0]),
        ({"context_blocks": 1}, lambda m: m.context[0][0]),
    ],
    ids=["full-resolution", "context"],
)
def test_new_blocks_start_as_the_identity_and_extend_a_checkpoint(
    tmp_path: Path, extra: dict, block
) -> None:
    import dataclasses

    plain = build_model("unet", base=8)
    deep = build_model("unet", base=8, **extra)
    assert count_parameters(deep) > count_parameters(plain)
    assert deep.load_state_dict(plain.state_dict(), strict=False).unexpected_keys == []
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(deep.eval()(x), plain.eval()(x), rtol=0, atol=0)
    # a run that adds blocks to a checkpoint without them starts from the same function
    src = Trainer(_cfg(tmp_path / "src", [], 1), log=io.StringIO())
    src.run()
    log = io.StringIO()
    cfg = dataclasses.replace(
        _cfg(tmp_path / "dst", [], 2), init_from=str(tmp_path / "src" / "checkpoint.pt"), **extra
    )
    dst = Trainer(cfg, log=log)
    assert "new block(s) starting as the identity" in log.getvalue()
    with torch.no_grad():
        torch.testing.assert_close(dst.model.eval()(x), src.model.eval()(x), rtol=0, atol=0)
    dst.run()
    assert float(block(dst.model).body[-1].weight.detach().abs().sum()) > 0  # it learns
    # the same from the exported ONNX file: the new blocks are not in the graph
    onnx_dst = Trainer(
        dataclasses.replace(
            cfg,
            out_dir=str(tmp_path / "dst2"),
            init_from=str(tmp_path / "src" / "antema-unet.onnx"),
        ),
        log=io.StringIO(),
    )
    with torch.no_grad():
        torch.testing.assert_close(
            onnx_dst.model.eval()(x), src.model.eval()(x), rtol=1e-4, atol=1e-5
        )
    assert float(block(onnx_dst.model).body[-1].weight.detach().abs().sum()) == 0
    # the other way round (a checkpoint with blocks into a model without) is refused
    back = dataclasses.replace(
        _cfg(tmp_path / "back", [], 1), init_from=str(tmp_path / "dst" / "checkpoint.pt")
    )
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(back, log=io.StringIO())


def test_init_from_a_checkpoint_takes_its_averaged_weights(tmp_path: Path) -> None:
    """With ``ema`` on, the averaged weights are the ones validated and exported, so a phase
    that starts from such a checkpoint starts from them, not from the raw weights."""
    import dataclasses

    src = Trainer(dataclasses.replace(_cfg(tmp_path / "src", [], 3), ema=0.9), log=io.StringIO())
    src.run()
    assert src.ema_model is not None
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        avg = src.ema_model.eval()(x)
        assert float((src.model.eval()(x) - avg).abs().max()) > 1e-4
    dst = Trainer(
        dataclasses.replace(
            _cfg(tmp_path / "dst", [], 1), init_from=str(tmp_path / "src" / "checkpoint.pt")
        ),
        log=io.StringIO(),
    )
    with torch.no_grad():
        torch.testing.assert_close(dst.model.eval()(x), avg, rtol=0, atol=0)


def test_batches_are_seeded_per_step(tmp_path: Path) -> None:
    _write_pairs(tmp_path / "pairs")
    real = load_pairs(tmp_path / "pairs")
    assert [it.name for it in real] == ["image_0.png", "image_1.png", "image_2.png"]
    s = BatchSampler(Preprocessing(), tile=64, real=real, real_fraction=0.5, seed=1)
    x1, y1 = s.batch(5, 3)
    x2, y2 = s.batch(5, 3)
    x3, _ = s.batch(6, 3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.shape == (3, 1, 64, 64) and x1.dtype == np.float32
    assert 0.0 <= x1.min() and x1.max() <= 1.0
    assert set(np.unique(y1)) <= {0.0, 1.0}


def test_synthetic_tiles_without_photometric_changes_are_inference_inputs(tmp_path: Path) -> None:
    """With ``synthetic_photometric=False`` every synthetic tile is exactly what inference's
    preprocessing makes of an image: 256 levels, spanning [0, 1] (percentile scaling); with the
    default, brightness / contrast / gamma move most tiles off that."""
    from antema_fast.cli import main

    pre = Preprocessing()

    def on_grid(x: np.ndarray) -> bool:
        on_levels = np.allclose(x * 255, np.round(x * 255), rtol=0, atol=1e-3)
        return bool(on_levels and x.min() == 0 and x.max() == 1)

    plain = BatchSampler(pre, tile=64, real_fraction=0.0, seed=3, synthetic_photometric=False)
    x, y = plain.batch(0, 12)
    assert all(on_grid(t[0]) for t in x)
    varied, _ = BatchSampler(pre, tile=64, real_fraction=0.0, seed=3).batch(0, 12)
    assert sum(not on_grid(t[0]) for t in varied) >= 4
    # the first tile is drawn the same way up to the photometric step: same mask both times
    _, y_var = BatchSampler(pre, tile=64, real_fraction=0.0, seed=3).batch(0, 1)
    np.testing.assert_array_equal(y[0], y_var[0])
    # the command line's switch reaches the checkpointed configuration
    args = ["train", "--out-dir", str(tmp_path / "cli"), "--base", "8", "--steps", "1"]
    args += ["--batch", "2", "--tile", "64", "--threads", "1", "--validate-every", "1000"]
    assert main([*args, "--no-synthetic-photometric"]) == 0
    ck = torch.load(tmp_path / "cli" / "checkpoint.pt", weights_only=False)
    assert ck["config"]["synthetic_photometric"] is False


def test_gap_weights_follow_the_unet_formula_between_particles_only() -> None:
    """U-Net's weight map: 1 + w0·exp(−(d1 + d2)²/(2σ²)) on background pixels, d1 and d2 the
    distances to the nearest and the second-nearest particle; 1 on particles, next to a lone
    particle and far from all."""
    from antema_fast.train.data import gap_weights

    h, w = 40, 60
    yy, xx = np.mgrid[:h, :w]
    a = (yy - 20) ** 2 + (xx - 18) ** 2 <= 8**2
    b = (yy - 20) ** 2 + (xx - 38) ** 2 <= 8**2  # a 3-px gap between the discs (cols 27-29)
    crops = []
    for m in (a, b):
        rr, cc = np.nonzero(m)
        crops.append((rr.min(), cc.min(), m[rr.min() : rr.max() + 1, cc.min() : cc.max() + 1]))
    wt = gap_weights((h, w), crops, 5.0, 3.0)
    assert wt.dtype == np.float32 and wt.shape == (h, w)
    assert np.all(wt[a | b] == 1.0)
    # the middle of the gap: 2 px from each disc (cols 26 and 30 are their last pixels)
    assert wt[20, 28] == pytest.approx(1 + 5 * np.exp(-(4.0**2) / 18), rel=1e-3)
    assert wt[20, 28] > wt[12, 28] > wt[2, 28] >= 1.0  # falls off along the gap
    assert np.allclose(wt[:, :5], 1.0, atol=1e-6)  # beside one disc only: d2 is large
    # one particle, none, or w0 = 0: no weights
    assert np.all(gap_weights((h, w), crops[:1], 5.0, 3.0) == 1.0)
    assert np.all(gap_weights((h, w), crops, 0.0, 3.0) == 1.0)
    # an overlapping pair: the notch where the outlines meet weighs most
    c = (yy - 20) ** 2 + (xx - 30) ** 2 <= 8**2
    rr, cc = np.nonzero(c)
    crop_c = (rr.min(), cc.min(), c[rr.min() : rr.max() + 1, cc.min() : cc.max() + 1])
    wt2 = gap_weights((h, w), [crops[0], crop_c], 5.0, 3.0)
    assert not (a | c)[14, 24] and wt2[14, 24] > 4.0  # just outside both, above the contact
    assert wt2[20, 2] < 1.01 and wt2[2, 24] < wt2[14, 24]


def test_gap_weighted_batches_and_loss(tmp_path: Path) -> None:
    """With ``gap_weight`` the targets carry the weights as a second channel, the tiles and
    masks are those of the unweighted sampler, and the loss weighs the cross-entropy by them
    (all-ones weights: the plain loss). The option reaches the checkpointed configuration."""
    import torch.nn.functional as F
    from antema_fast.cli import main
    from antema_fast.train.loop import loss_fn

    _write_pairs(tmp_path / "pairs")
    real = load_pairs(tmp_path / "pairs")
    kw = dict(tile=64, real=real, real_fraction=0.5, seed=4)
    x0, y0 = BatchSampler(Preprocessing(), **kw).batch(2, 6)
    x1, y1 = BatchSampler(Preprocessing(), gap_weight=5.0, **kw).batch(2, 6)
    np.testing.assert_array_equal(x0, x1)
    assert y0.shape == (6, 1, 64, 64) and y1.shape == (6, 2, 64, 64)
    np.testing.assert_array_equal(y0[:, 0], y1[:, 0])
    wts = y1[:, 1]
    assert wts.min() >= 1.0 and wts.max() > 2.0
    assert np.all(wts[y1[:, 0] == 1] == 1.0)
    with pytest.raises(ValueError, match="gap_weight"):
        BatchSampler(Preprocessing(), gap_weight=-1.0)

    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 16, 16, generator=g)
    t = (torch.rand(2, 1, 16, 16, generator=g) > 0.5).float()
    ones = torch.cat([t, torch.ones_like(t)], 1)
    assert torch.allclose(loss_fn(z, ones), loss_fn(z, t))
    wt = 1.0 + 4.0 * torch.rand(2, 1, 16, 16, generator=g)
    p = torch.sigmoid(z)
    dice = (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    bce = (wt * F.binary_cross_entropy_with_logits(z, t, reduction="none")).mean()
    assert torch.allclose(loss_fn(z, torch.cat([t, wt], 1)), bce + 1 - dice)

    args = ["train", "--out-dir", str(tmp_path / "cli"), "--base", "8", "--steps", "2"]
    args += ["--batch", "2", "--tile", "64", "--threads", "1", "--validate-every", "1000"]
    assert main([*args, "--gap-weight", "5", "--gap-sigma", "2"]) == 0
    ck = torch.load(tmp_path / "cli" / "checkpoint.pt", weights_only=False)
    assert ck["config"]["gap_weight"] == 5.0 and ck["config"]["gap_sigma_px"] == 2.0


def test_sparse_fraction_draws_sparse_synthetic_tiles(tmp_path: Path) -> None:
    """``sparse_fraction`` = 1 makes every synthetic tile a sparse field (far fewer particle
    pixels than the standard tiles of the same seed); a value outside [0, 1] is refused, and
    the option reaches the checkpointed configuration."""
    from antema_fast.cli import main

    kw = dict(tile=96, real=(), real_fraction=0.0, seed=3)
    _, y0 = BatchSampler(Preprocessing(), **kw).batch(1, 16)
    _, y1 = BatchSampler(Preprocessing(), sparse_fraction=1.0, **kw).batch(1, 16)
    assert y0.shape == y1.shape == (16, 1, 96, 96)
    assert float(y1.mean()) < 0.4 * float(y0.mean())
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="sparse_fraction"):
            BatchSampler(Preprocessing(), sparse_fraction=bad)

    args = ["train", "--out-dir", str(tmp_path / "cli"), "--base", "8", "--steps", "2"]
    args += ["--batch", "2", "--tile", "64", "--threads", "1", "--validate-every", "1000"]
    assert main([*args, "--sparse-fraction", "0.25"]) == 0
    ck = torch.load(tmp_path / "cli" / "checkpoint.pt", weights_only=False)
    assert ck["config"]["sparse_fraction"] == 0.25


def test_msaem_split_is_by_number() -> None:
    from antema_fast.train.data import LabelledImage

    items = [
        LabelledImage(f"image_{i}.png", np.zeros((2, 2), np.float32), np.zeros((2, 2), bool))
        for i in range(20)
    ]
    tr, va = split_msaem(items)
    assert [it.name for it in va] == [f"image_{i}.png" for i in range(15, 20)]
    assert len(tr) == 15


def test_train_checkpoint_resume_export(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    _write_pairs(tmp_path / "pairs")
    out = tmp_path / "run"
    # uninterrupted reference: 4 steps
    ref = Trainer(_cfg(tmp_path / "ref", [str(tmp_path / "pairs")], 4), log=io.StringIO())
    ref.run()
    # interrupted run: stops after 2 of 4 steps; a new Trainer resumes from the checkpoint
    half = Trainer(_cfg(out, [str(tmp_path / "pairs")], 4), log=io.StringIO())
    half.run(until_step=2)
    assert not (out / "antema-unet.onnx").exists()
    assert (out / "checkpoint.pt").exists()
    resumed = Trainer(_cfg(out, [str(tmp_path / "pairs")], 4), log=io.StringIO())
    assert resumed.step == 2
    resumed.run()
    assert resumed.step == 4
    for k, v in ref.model.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=1e-4, atol=1e-5)

    path = out / "antema-unet.onnx"
    assert path.exists() and (out / "antema-unet.fp16.onnx").exists()
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 17
    meta = {p.key: p.value for p in model.metadata_props}
    for key in (
        META_NAME,
        META_VERSION,
        META_PREPROCESSING,
        META_PAD_MULTIPLE,
        META_PIXEL_SIZE_NM,
        META_METRICS,
        META_TRAINING,
        META_THRESHOLD,
    ):
        assert key in meta, key
    assert meta[META_PIXEL_SIZE_NM] == "null"
    assert Preprocessing.from_json(meta[META_PREPROCESSING]) == resumed.pre
    assert int(meta[META_PAD_MULTIPLE]) == 32
    assert json.loads(meta[META_TRAINING])["steps_done"] == 4
    # dynamic batch / height / width; ORT matches torch within 1e-4
    rng = np.random.default_rng(0)
    for shape in ((1, 1, 64, 64), (2, 1, 96, 128)):
        x = rng.random(shape).astype(np.float32)
        assert onnx_matches_torch(resumed.model.eval(), path, x, atol=1e-4) <= 1e-4
    sess = ort.InferenceSession(
        str(out / "antema-unet.fp16.onnx"), providers=["CPUExecutionProvider"]
    )
    x = rng.random((1, 1, 64, 96)).astype(np.float32)
    p16 = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    p32 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        [OUTPUT_NAME], {INPUT_NAME: x}
    )[0]
    assert p16.dtype == np.float32 and p16.shape == (1, 1, 64, 96)
    assert float(np.abs(p16 - p32).max()) < 2e-2


def test_evaluate_model_reports_paper_and_instance_metrics(tmp_path: Path) -> None:
    from antema_fast.train.evaluate import evaluate_model, to_json

    _write_pairs(tmp_path / "pairs", 2)
    cfg = _cfg(tmp_path / "run", [], 2)
    t = Trainer(cfg, log=io.StringIO())
    t.run()
    rep = evaluate_model(
        tmp_path / "run" / "antema-unet.onnx",
        synthetic_per_regime=1,
        synthetic_tile=64,
        real_folder=tmp_path / "pairs",
        timing_size=64,
        timing_repeats=1,
        threads=1,
    )
    for key in ("global_accuracy", "class_accuracy", "iou", "dice", "confusion", "instance"):
        assert key in rep["real"]
    assert set(rep["synthetic"]) == {"tem", "hrtem", "haadf", "ultrasmall", "lowdose", "all"}
    assert rep["timing"]["seconds_median"] > 0
    # hole / plain split: the fields of each kind, pooled; it adds up to the regime's numbers
    from antema_fast.train.data import synthetic_set

    test = synthetic_set(1, 64, 12345)
    holes = sum(s.film is not None for _, s in test)
    split = rep["synthetic"]["all"]["fields"]
    assert split["film_hole"]["n"] == holes and split["plain"]["n"] == len(test) - holes
    for kind in ("film_hole", "plain"):
        per = [rep["synthetic"][r]["fields"][kind] for r in ("tem", "hrtem", "haadf")]
        per += [rep["synthetic"][r]["fields"][kind] for r in ("ultrasmall", "lowdose")]
        for key in ("n", "intersection", "union"):
            assert split[kind][key] == sum(d[key] for d in per)
    tot = split["film_hole"]["intersection"] + split["plain"]["intersection"]
    uni = split["film_hole"]["union"] + split["plain"]["union"]
    assert tot / uni == pytest.approx(rep["synthetic"]["all"]["iou"][1], abs=1e-9)
    # the worst fields: most wrong pixels first; each one redrawn by itself is the same field
    from antema_fast.train.data import synthetic_field
    from antema_fast.train.evaluate import OnnxSegmenter

    worst = rep["synthetic"]["all"]["worst_fields"]
    assert len(worst) == 5
    wrong = [f["false_positive"] + f["false_negative"] for f in worst]
    assert wrong == sorted(wrong, reverse=True)
    seg = OnnxSegmenter(tmp_path / "run" / "antema-unet.onnx", threads=1)
    for f in worst[:2]:
        s = synthetic_field(f["regime"], f["index"], 64, 12345)
        same = dict(test)[f["regime"]]  # one field per regime here
        np.testing.assert_array_equal(s.image, same.image)
        pred = seg.predict(s.image)
        assert f["false_negative"] == int(np.count_nonzero(~pred & s.semantic))
        assert f["true_positive"] == int(np.count_nonzero(pred & s.semantic))
    json.loads(to_json(rep))


def test_worst_fields_summary_counts_where_the_wrong_pixels_are() -> None:
    from antema_fast.train.evaluate import worst_fields_summary

    rows = []
    for k, (tp, fp, fn) in enumerate([(90, 4, 4), (10, 0, 80), (50, 12, 0)] + [(100, 0, 0)] * 7):
        rows.append(
            {
                "regime": "tem",
                "index": k,
                "true_positive": tp,
                "false_positive": fp,
                "false_negative": fn,
            }
        )
    out = worst_fields_summary(rows, 2)
    assert [f["index"] for f in out["worst_fields"]] == [1, 2]
    # all: intersection 850, union 850 + 100 wrong = 950
    first, second = out["worst_fields"]
    assert first["iou"] == pytest.approx(10 / 90) and first["share"] == pytest.approx(0.8)
    assert first["iou_if_right"] == pytest.approx((850 + 80) / (950 - 0))
    assert second["share"] == pytest.approx(0.12)
    assert second["iou_if_right"] == pytest.approx((930 + 0) / (950 - 12))
    assert out["error_concentration"] == pytest.approx(0.8)  # the worst tenth: 1 of 10 fields
    assert worst_fields_summary([], 3) == {"worst_fields": [], "error_concentration": 0.0}


def test_threshold_calibration_and_release(tmp_path: Path) -> None:
    """calibrate_threshold picks the validation-IoU maximum; release writes it into the model's
    metadata and the card, and the segmenter then uses it."""
    from antema_fast import synth
    from antema_fast.segment import Segmenter
    from antema_fast.train.card import release
    from antema_fast.train.evaluate import OnnxSegmenter, calibrate_threshold, evaluate_model

    cfg = _cfg(tmp_path / "run", [], 2)
    Trainer(cfg, log=io.StringIO()).run()
    src = tmp_path / "run" / "antema-unet.onnx"
    cal = calibrate_threshold(src, synthetic_per_regime=1, synthetic_tile=64, threads=1)
    iou = np.asarray(cal["iou"])
    assert cal["threshold"] in cal["thresholds"] and 0.5 in cal["thresholds"]
    assert iou.max() == cal["iou"][cal["thresholds"].index(cal["threshold"])]
    assert cal["iou_at_model"] == cal["iou"][cal["thresholds"].index(0.5)] <= iou.max()
    # the pooled IoU is the union-weighted mean of the regimes' IoUs
    assert list(cal["regimes"]) == list(synth.REGIMES)
    assert min(cal["regimes"].values()) <= iou.max() <= max(cal["regimes"].values())
    with pytest.raises(ValueError, match="thresholds"):
        calibrate_threshold(src, synthetic_per_regime=1, synthetic_tile=64, thresholds=[1.5])

    rep = evaluate_model(src, synthetic_per_regime=1, synthetic_tile=64, timing_size=0, threads=1)
    out = release(
        src, tmp_path / "models", report=rep, training={}, reproduce="antema train ...",
        threshold=0.35,
    )  # fmt: skip
    assert OnnxSegmenter(out, threads=1).threshold == 0.35
    assert Segmenter(model=str(out), backend="onnxruntime").model.threshold == 0.35
    assert "threshold 0.35" in (tmp_path / "models" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert (tmp_path / "models" / "antema-unet.fp16.onnx").exists()
    with pytest.raises(ValueError, match="threshold"):
        release(src, tmp_path / "m2", report=rep, training={}, reproduce="", threshold=1.0)


def test_cli_train_stop_at_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from antema_fast.cli import main

    out = tmp_path / "run"
    args = ["train", "--out-dir", str(out), "--base", "8", "--steps", "4", "--batch", "2"]
    args += ["--tile", "64", "--warmup", "1", "--threads", "1", "--validate-every", "1000"]
    args += ["--checkpoint-every", "1000", "--export-every", "1000", "--seed", "1"]
    assert main([*args, "--stop-at", "2"]) == 0
    assert "stopped at step 2" in capsys.readouterr().out
    assert (out / "checkpoint.pt").exists() and not (out / "antema-unet.onnx").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 2
    assert main(args) == 0  # resumes and finishes the schedule
    assert (out / "antema-unet.onnx").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 4
    with pytest.raises(SystemExit):
        main([*args, "--stop-at", "0"])


def test_onnx_weights_come_back_into_torch_with_recalibrated_batch_norms(tmp_path: Path) -> None:
    """An exported graph (batch norms folded into the convolutions) loads back into a fresh
    model: eval mode computes the graph's function; with calibration batches the batch norms
    hold those batches' statistics, so train mode on the same batch computes it too."""
    import dataclasses

    from antema_fast.train.export import export_onnx, import_onnx_weights

    src = Trainer(
        dataclasses.replace(_cfg(tmp_path / "src", [], 3), refine_blocks=1), log=io.StringIO()
    )
    src.run()
    path = tmp_path / "src" / "antema-unet.onnx"
    rng = np.random.default_rng(5)
    x = rng.random((2, 1, 64, 96)).astype(np.float32)

    plain = build_model("unet", base=8, refine_blocks=1)
    assert import_onnx_weights(plain, path) == sum(
        isinstance(m, torch.nn.Conv2d) for m in plain.modules()
    )
    assert onnx_matches_torch(plain.eval(), path, x, atol=2e-5) <= 2e-5
    bn = plain.stem[0][1]
    torch.testing.assert_close(bn.running_mean, torch.zeros_like(bn.running_mean))

    calibrated = build_model("unet", base=8, refine_blocks=1)
    import_onnx_weights(calibrated, path, [x])
    assert onnx_matches_torch(calibrated.eval(), path, x, atol=2e-5) <= 2e-5
    bn = calibrated.stem[0][1]
    assert float(bn.running_var.min()) > 0 and float(bn.running_mean.abs().max()) > 0
    with torch.no_grad():
        train_mode = torch.sigmoid(calibrated.train()(torch.from_numpy(x))).numpy()
        eval_mode = torch.sigmoid(calibrated.eval()(torch.from_numpy(x))).numpy()
    assert float(np.abs(train_mode - eval_mode).max()) < 1e-4
    # a re-export of the imported model is the same function again
    again = export_onnx(
        calibrated, tmp_path / "again.onnx", preprocessing=src.pre, pad_multiple=32, fp16=False
    )
    assert onnx_matches_torch(src.model.eval(), again, x, atol=2e-5) <= 2e-5

    with pytest.raises(ValueError, match="src/antema-unet.onnx.*(shape|no weights|matches no)"):
        import_onnx_weights(build_model("unet", base=16), path)
    with pytest.raises(ValueError, match="matches no convolution"):
        import_onnx_weights(build_model("unet", base=8), path)  # the graph has a block more


def _jaccard_loss_of_errors(target: np.ndarray, wrong: np.ndarray) -> float:
    """1 − IoU when exactly the pixels in ``wrong`` are predicted wrongly (the definition)."""
    pred = np.where(wrong, 1 - target, target)
    inter = np.sum((pred == 1) & (target == 1))
    union = np.sum((pred == 1) | (target == 1))
    return 1.0 - inter / union if union else 0.0


def test_lovasz_hinge_is_the_jaccard_loss_on_binary_errors_and_zero_with_margin() -> None:
    from antema_fast.train.loop import LOSSES, lovasz_hinge

    rng = np.random.default_rng(11)
    for _ in range(20):
        t = (rng.random((2, 1, 7, 9)) < rng.uniform(0.1, 0.9)).astype(np.float32)
        wrong = rng.random(t.shape) < rng.uniform(0.0, 0.5)
        sign = 2 * t - 1
        # logit 0 on a wrong pixel (hinge error 1), a margin of 2 on a right one (error 0)
        z = np.where(wrong, 0.0, 2.0 * sign).astype(np.float32)
        got = float(lovasz_hinge(torch.from_numpy(z), torch.from_numpy(t)))
        assert got == pytest.approx(_jaccard_loss_of_errors(t, wrong), abs=1e-6)
    t = torch.from_numpy((rng.random((1, 1, 16, 16)) < 0.3).astype(np.float32))
    assert float(lovasz_hinge(4 * (2 * t - 1), t)) == 0.0
    # the surrogate is piecewise linear and grows with each error: a worse logit costs more
    z0 = torch.zeros_like(t)
    assert float(lovasz_hinge(z0 - 1, t)) > float(lovasz_hinge(z0, t)) > 0
    # its gradient pushes particle logits up and background logits down
    z = torch.zeros_like(t, requires_grad=True)
    LOSSES["bce-lovasz"](z, t).backward()
    g = z.grad.numpy()
    assert np.all(g[t.numpy() == 1] < 0) and np.all(g[t.numpy() == 0] > 0)


def test_fine_tune_from_an_onnx_file_with_the_lovasz_loss(tmp_path: Path) -> None:
    """`antema train --init-from model.onnx --loss bce-lovasz` starts from the file's function
    and trains; an unknown loss is refused."""
    import dataclasses

    from antema_fast.cli import main

    Trainer(_cfg(tmp_path / "src", [], 2), log=io.StringIO()).run()
    path = tmp_path / "src" / "antema-unet.onnx"
    log = io.StringIO()
    cfg = dataclasses.replace(_cfg(tmp_path / "ft", [], 3), init_from=str(path), loss="bce-lovasz")
    ft = Trainer(cfg, log=log)
    assert "batch norms recalibrated" in log.getvalue()
    x = np.random.default_rng(2).random((1, 1, 64, 64)).astype(np.float32)
    assert onnx_matches_torch(ft.model.eval(), path, x, atol=2e-5) <= 2e-5
    before = [p.detach().clone() for p in ft.model.parameters()]
    ft.run()
    assert any(not torch.equal(a, b) for a, b in zip(before, ft.model.parameters(), strict=True))
    assert (tmp_path / "ft" / "antema-unet.onnx").exists()
    with pytest.raises(ValueError, match="loss"):
        Trainer(dataclasses.replace(cfg, out_dir=str(tmp_path / "x"), loss="focal"))
    args = ["train", "--out-dir", str(tmp_path / "cli"), "--base", "8", "--steps", "1"]
    args += ["--batch", "2", "--tile", "64", "--threads", "1", "--validate-every", "1000"]
    args += ["--init-from", str(path), "--loss", "bce-lovasz"]
    assert main(args) == 0
    assert (tmp_path / "cli" / "antema-unet.onnx").exists()


def test_weight_average_is_exported_resumes_exactly_and_follows_its_formula(
    tmp_path: Path,
) -> None:
    """`ema`: the exported ONNX computes the averaged weights, an interrupted run resumes the
    average exactly, and one update is ``d · avg + (1 − d) · current`` with the ramped decay."""
    import dataclasses

    import onnx
    from antema_fast.cli import main

    def cfg(out: Path) -> TrainConfig:
        return dataclasses.replace(_cfg(out, [], 5), ema=0.9)

    ref = Trainer(cfg(tmp_path / "ref"), log=io.StringIO())
    ref.run()
    assert ref.ema_model is not None
    raw, avg = ref.model.state_dict(), ref.ema_model.state_dict()
    assert any(not torch.allclose(avg[k], raw[k]) for k in raw if raw[k].dtype.is_floating_point), (
        "the average should differ from the last weights"
    )
    x = np.random.default_rng(4).random((1, 1, 64, 64)).astype(np.float32)
    path = tmp_path / "ref" / "antema-unet.onnx"
    assert onnx_matches_torch(ref.ema_model.eval(), path, x, atol=1e-4) <= 1e-4
    with pytest.raises(AssertionError, match="differs"):
        onnx_matches_torch(ref.model.eval(), path, x, atol=1e-4)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert "moving average" in json.loads(meta[META_TRAINING])["weights"]

    half = Trainer(cfg(tmp_path / "run"), log=io.StringIO())
    half.run(until_step=3)
    resumed = Trainer(cfg(tmp_path / "run"), log=io.StringIO())
    assert resumed.step == 3
    resumed.run()
    assert resumed.ema_model is not None
    for k, v in avg.items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(resumed.ema_model.state_dict()[k], v, rtol=1e-4, atol=1e-5)

    # one update by hand: at k steps into the average the decay is min(ema, (1+k)/(10+k))
    t = Trainer(cfg(tmp_path / "one"), log=io.StringIO())
    assert t.ema_model is not None
    t.step = 30
    with torch.no_grad():
        for p in t.model.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in t.ema_model.state_dict().items()}
    t._update_ema()
    d = min(0.9, 31 / 40)
    for k, v in t.model.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(t.ema_model.state_dict()[k], d * before[k] + (1 - d) * v)
    with pytest.raises(ValueError, match="ema"):
        Trainer(dataclasses.replace(cfg(tmp_path / "bad"), ema=1.0))
    args = ["train", "--out-dir", str(tmp_path / "cli"), "--base", "8", "--steps", "2"]
    args += ["--batch", "2", "--tile", "64", "--threads", "1", "--validate-every", "1000"]
    args += ["--ema", "0.99"]
    assert main(args) == 0
    ck = torch.load(tmp_path / "cli" / "checkpoint.pt", weights_only=False)
    assert ck["config"]["ema"] == 0.99 and ck["ema_model"] is not None


def test_bf16_and_channels_last_train_the_same_function(tmp_path: Path) -> None:
    """`precision="bf16"` and `channels_last` change how a step is computed, not what: on the
    same weights and batch the channels-last layout gives float32's loss and gradient to
    rounding, bfloat16 autocast within its precision; a bf16 run checkpoints, resumes and
    exports a float32 model that ONNX Runtime reproduces; an unknown precision is refused."""
    import dataclasses

    import antema_fast
    from antema_fast.cli import main

    _write_pairs(tmp_path / "pairs")
    base = _cfg(tmp_path / "src", [str(tmp_path / "pairs")], 2)
    # the shipped model's weights: the comparison is about a trained network, as fine-tuned
    shipped = Path(antema_fast.__file__).parent / "models" / "antema-unet.onnx"
    ship = dataclasses.replace(base, base=16, refine_blocks=3, tile=128)

    def step(name: str, **kw: object) -> tuple[Trainer, float, torch.Tensor]:
        cfg = dataclasses.replace(ship, out_dir=str(tmp_path / name), init_from=str(shipped), **kw)
        t = Trainer(cfg, log=io.StringIO())
        t.model.train()
        x, y = t.sampler.batch(7, 8)
        loss = t._loss(x, y)
        t.opt.zero_grad()
        loss.backward()
        grad = torch.cat([p.grad.reshape(-1) for p in t.model.parameters() if p.grad is not None])
        return t, float(loss.detach()), grad

    _, l_ref, g_ref = step("plain", channels_last=False)
    t_cl, l_cl, g_cl = step("cl", channels_last=True)
    conv = [p for p in t_cl.model.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    assert conv and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv)
    assert abs(l_cl - l_ref) <= 1e-5 * abs(l_ref)
    assert float((g_cl - g_ref).norm() / g_ref.norm()) < 1e-3
    _, l_bf, g_bf = step("bf16", precision="bf16")
    assert abs(l_bf - l_ref) <= 2e-2 * abs(l_ref)
    # measured here: cosine 0.999, relative difference 0.045 (channels-last: 9e-5)
    assert float(torch.nn.functional.cosine_similarity(g_bf, g_ref, dim=0)) > 0.995
    assert 1e-3 < float((g_bf - g_ref).norm() / g_ref.norm()) < 0.1

    # a bf16 run: interrupted, resumed, exported in float32
    cfg = dataclasses.replace(base, out_dir=str(tmp_path / "run"), steps=4, precision="bf16")
    Trainer(cfg, log=io.StringIO()).run(until_step=2)
    resumed = Trainer(cfg, log=io.StringIO())
    assert resumed.step == 2
    resumed.run()
    x = np.random.default_rng(5).random((1, 1, 64, 96)).astype(np.float32)
    path = tmp_path / "run" / "antema-unet.onnx"
    assert onnx_matches_torch(resumed.model.eval(), path, x, atol=1e-4) <= 1e-4
    with pytest.raises(ValueError, match="precision"):
        Trainer(dataclasses.replace(cfg, out_dir=str(tmp_path / "bad"), precision="fp8"))
    args = ["train", "--out-dir", str(tmp_path / "cli"), "--base", "8", "--steps", "1"]
    args += ["--batch", "2", "--tile", "64", "--threads", "1", "--validate-every", "1000"]
    args += ["--precision", "bf16", "--no-channels-last"]
    assert main(args) == 0
    ck = torch.load(tmp_path / "cli" / "checkpoint.pt", weights_only=False)
    assert ck["config"]["precision"] == "bf16" and ck["config"]["channels_last"] is False


def test_batches_drawn_by_worker_processes_train_the_same_weights(tmp_path: Path) -> None:
    """`data_workers` moves the drawing of batches to other processes: the batches, in any
    order of asking, are the sampler's own, and a run with workers (interrupted and resumed
    on the way) ends on exactly the weights of a run without."""
    import dataclasses

    from antema_fast.train.data import BatchPrefetcher

    _write_pairs(tmp_path / "pairs")
    base = dataclasses.replace(_cfg(tmp_path / "a", [str(tmp_path / "pairs")], 5), val_synthetic=1)
    plain = Trainer(base, log=io.StringIO())
    with BatchPrefetcher(plain.sampler, 3, 2, depth=3) as pf:
        for step in (4, 5, 6, 1, 2, 9):  # in order, then back (a resume), then a jump
            x, y = pf.batch(step)
            x0, y0 = plain.sampler.batch(step, 3)
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(y, y0)
    with pytest.raises(ValueError, match="workers"):
        BatchPrefetcher(plain.sampler, 3, 0)
    plain.run()
    cfg = dataclasses.replace(base, out_dir=str(tmp_path / "b"), data_workers=2)
    Trainer(cfg, log=io.StringIO()).run(until_step=3)
    with_workers = Trainer(cfg, log=io.StringIO())
    assert with_workers.step == 3
    with_workers.run()
    a, b = plain.model.state_dict(), with_workers.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with pytest.raises(ValueError, match="data_workers"):
        Trainer(dataclasses.replace(cfg, out_dir=str(tmp_path / "c"), data_workers=-1))


def test_devices_and_a_gpu_that_is_not_there(tmp_path: Path, capsys) -> None:
    """`device`: "cpu" and "auto" (no GPU here) train on the CPU; asking for CUDA where torch
    sees none is refused with the reason, by the API and by `antema train`."""
    import dataclasses

    from antema_fast.cli import main
    from antema_fast.train.loop import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "gpu0", "meta"):
        with pytest.raises(ValueError, match="device"):
            resolve_device(bad)
    if torch.cuda.is_available():
        pytest.skip("this torch sees a GPU: the refusal cannot be shown")
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        resolve_device("cuda")
    cfg = dataclasses.replace(_cfg(tmp_path / "run", [], 2), device="auto")
    t = Trainer(cfg, log=io.StringIO())
    assert t.device.type == "cpu" and next(t.model.parameters()).device.type == "cpu"
    rc = main(["train", "--out-dir", str(tmp_path / "x"), "--steps", "1", "--device", "cuda"])
    assert rc == 2 and "sees no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


def test_export_without_the_fp16_converter_writes_the_fp32_model(
    tmp_path: Path, monkeypatch
) -> None:
    """Where onnxconverter-common is missing (a GPU machine's own Python), an export still
    writes the FP32 model and warns that the FP16 sibling was skipped, instead of ending the
    run."""
    import sys

    from antema_fast.train.export import export_onnx

    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)  # import fails
    model = build_model("unet", base=8)
    with pytest.warns(UserWarning, match="no FP16 sibling"):
        path = export_onnx(
            model, tmp_path / "m.onnx", preprocessing=DEFAULT_PREPROCESSING, pad_multiple=32
        )
    assert path.exists() and not (tmp_path / "m.fp16.onnx").exists()
    x = np.random.default_rng(1).random((1, 1, 64, 64)).astype(np.float32)
    assert onnx_matches_torch(model, path, x) <= 1e-4


def test_average_onnx_averages_every_convolution_and_refuses_other_architectures(
    tmp_path: Path,
) -> None:
    """`average_onnx` ("model soup"): each convolution's folded weight and bias is the weighted
    mean of the files'; a model averaged with itself computes what it did; the sources are
    recorded; fewer than two files, bad weights or another architecture are refused."""
    import json

    import onnx
    import onnxruntime as ort
    from antema_fast.train.export import average_onnx, export_onnx
    from onnx import numpy_helper

    def exported(seed: int, base: int = 8) -> Path:
        torch.manual_seed(seed)
        model = build_model("unet", base=base)
        with torch.no_grad():  # batch norms that fold into something other than the identity
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
        path = tmp_path / f"m{seed}_{base}.onnx"
        return export_onnx(
            model, path, preprocessing=DEFAULT_PREPROCESSING, pad_multiple=32, fp16=False
        )

    def convs(path: Path) -> dict[str, list[np.ndarray]]:
        m = onnx.load(str(path))
        init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
        return {
            n.name: [init[i] for i in n.input[1:] if i] for n in m.graph.node if n.op_type == "Conv"
        }

    a, b = exported(1), exported(2)
    out = average_onnx([a, b], tmp_path / "avg.onnx", weights=[0.25, 0.75])
    ca, cb, cm = convs(a), convs(b), convs(out)
    assert cm.keys() == ca.keys() and len(cm) > 10
    for k in cm:
        for wa, wb, wm in zip(ca[k], cb[k], cm[k], strict=True):
            np.testing.assert_allclose(wm, 0.25 * wa + 0.75 * wb, rtol=1e-6, atol=1e-7)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    sources = json.loads(meta["antema.training"])["weight_average"]
    assert [s["weight"] for s in sources] == [0.25, 0.75] and sources[0]["model"] == str(a)
    # a model averaged with itself computes what it did
    same = average_onnx([a, a, a], tmp_path / "same.onnx")
    x = np.random.default_rng(0).random((1, 1, 64, 96)).astype(np.float32)
    y0 = ort.InferenceSession(str(a)).run(None, {"image": x})[0]
    y1 = ort.InferenceSession(str(same)).run(None, {"image": x})[0]
    np.testing.assert_allclose(y1, y0, atol=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        average_onnx([a], tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="weights"):
        average_onnx([a, b], tmp_path / "x.onnx", weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="differ"):
        average_onnx([a, exported(3, base=16)], tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
