"""The ideal-observer IoU ceiling of a synthetic micrograph (antema_fast.train.bound)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from antema_fast import synth
from antema_fast.train.bound import (
    _disc_overlap,
    expected_disc_iou_terms,
    iou_ceiling,
    particle_fisher,
)


def test_disc_overlap_cases_and_lens_against_a_raster() -> None:
    r = np.array([3.0, 3.0, 5.0, 2.0])
    assert _disc_overlap(r, r, np.zeros(4)) == pytest.approx(math.pi * r * r)
    assert _disc_overlap(3.0, 2.0, 5.0) == 0.0 and _disc_overlap(3.0, 2.0, 7.0) == 0.0
    assert _disc_overlap(5.0, 2.0, 1.5) == pytest.approx(math.pi * 4.0)  # inside
    # a lens, against counting the points of a fine grid in both discs
    r1, r2, d = 4.0, 3.0, 5.0
    g = np.arange(-8, 12, 0.01) + 0.005
    yy, xx = np.meshgrid(g, g, indexing="ij")
    both = (yy**2 + xx**2 < r1 * r1) & (yy**2 + (xx - d) ** 2 < r2 * r2)
    assert float(_disc_overlap(r1, r2, d)) == pytest.approx(both.sum() * 1e-4, rel=2e-3)


def test_expected_terms_without_error_are_the_area_and_shrink_with_error() -> None:
    rng = np.random.default_rng(0)
    i, u = expected_disc_iou_terms(50.0, np.zeros((3, 3)), rng)
    assert i == pytest.approx(50.0) and u == pytest.approx(50.0)
    i1, u1 = expected_disc_iou_terms(50.0, np.diag([0.01, 0.1, 0.1]), rng, 4000)
    i2, u2 = expected_disc_iou_terms(50.0, np.diag([0.04, 0.4, 0.4]), rng, 4000)
    assert 1.0 > i1 / u1 > i2 / u2 > 0.5


def _one_sphere(dose: float) -> synth.SynthImage:
    im = synth.Imaging(style="bf", mu_per_nm=0.1, carbon_amplitude=0.03, dose_per_px=dose)
    p = synth.Particle(y_nm=16.0, x_nm=16.0, scale_nm=6.0)
    return synth.render([p], (64, 64), 0.5, im, 1)


def test_fisher_information_grows_with_dose_and_the_ceiling_with_it() -> None:
    f100, area = particle_fisher(_one_sphere(100.0))
    f400, _ = particle_fisher(_one_sphere(400.0))
    assert f100.shape == (1, 3, 3) and area[0] > 100
    np.testing.assert_allclose(f100[0], f100[0].T, rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(f100[0]) > 0)
    np.testing.assert_allclose(f400, 4.0 * f100, rtol=1e-9)  # Poisson: information ∝ dose
    # a sphere: as much information about y as about x
    assert f100[0, 1, 1] == pytest.approx(f100[0, 2, 2], rel=0.1)
    c = [iou_ceiling(_one_sphere(d), samples=2000)["iou"] for d in (1.0, 10.0, 1e5)]
    assert c[0] < c[1] < c[2] and c[2] > 0.999 and c[0] < 0.98
    assert iou_ceiling(_one_sphere(10.0), sigma_log=0.01)["iou"] > c[1]  # a sharp size prior
    with pytest.raises(ValueError, match="no shot noise"):
        particle_fisher(_one_sphere(math.inf))


def test_ceiling_of_a_generated_low_dose_field_is_below_one_and_pools() -> None:
    s = synth.generate(3, (96, 96), "lowdose")
    c = iou_ceiling(s)
    assert c["particles"] == len(s.instances) > 0
    assert 0.5 < c["iou"] < 1.0 and c["union"] >= c["intersection"] > 0
    hi = iou_ceiling(replace(s, imaging=replace(s.imaging, dose_per_px=1e4)))
    assert hi["iou"] > c["iou"]


def test_evaluate_reports_the_ceiling_beside_the_model_iou(tmp_path: Path) -> None:
    import copy
    import json

    import onnx
    from antema_fast._preprocess import META_METRICS
    from antema_fast.train.card import release, write_card
    from antema_fast.train.evaluate import evaluate_model

    model = Path(__file__).parents[1] / "python" / "antema_fast" / "models" / "antema-unet.onnx"
    rep = evaluate_model(
        model, synthetic_per_regime=1, synthetic_tile=96, timing_size=0, threads=1, ceiling=True
    )
    for regime in (*synth.REGIMES, "all"):
        assert 0.3 < rep["synthetic"][regime]["ceiling_iou"] <= 1.0, regime
    assert (
        "ceiling_iou"
        not in evaluate_model(
            model, synthetic_per_regime=1, synthetic_tile=64, timing_size=0, threads=1
        )["synthetic"]["all"]
    )
    # the card gets a ceiling column, the metadata the numbers, the targets a word on regimes
    # whose ceiling is below the target
    pytest.importorskip("onnxconverter_common")
    out = release(model, tmp_path, report=rep, training={}, reproduce="antema train ...")
    card = (tmp_path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "| set | IoU | ceiling |" in card and "ideal observer" in card
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta[META_METRICS])["synthetic_lowdose_ceiling_iou"] == round(
        rep["synthetic"]["lowdose"]["ceiling_iou"], 4
    )
    low = copy.deepcopy(rep)
    for regime in synth.REGIMES:
        low["synthetic"][regime]["ceiling_iou"] = 0.85 if regime == "lowdose" else 0.95
    text = write_card(tmp_path / "card.md", report=low, training={}, reproduce="")
    assert "In lowdose even an ideal observer stays below 0.9 (ceiling 0.850)" in text
    low["synthetic"]["lowdose"]["ceiling_iou"] = 0.95
    text = write_card(tmp_path / "card.md", report=low, training={}, reproduce="")
    assert "even an ideal observer" not in text
