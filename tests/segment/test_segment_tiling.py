"""Padding, tile plans, blending, and tiled vs untiled inference (no seams)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from antema_fast import Settings
from antema_fast.segment import Segmenter
from antema_fast.segment._tiling import (
    flip_views,
    pad_to_multiple,
    plan_tiles,
    round_up,
    run_tiled,
    tile_starts,
)
from segment_helpers import discs, iou


@pytest.mark.parametrize("shape", [(1000, 1000), (333, 517), (1, 1), (32, 32), (2, 95)])
@pytest.mark.parametrize("multiple", [1, 16, 32])
def test_pad_to_multiple_shape_and_content(shape: tuple[int, int], multiple: int) -> None:
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    p = pad_to_multiple(x, multiple)
    assert p.shape == (round_up(shape[0], multiple), round_up(shape[1], multiple))
    assert p.shape[0] % multiple == 0 and p.shape[1] % multiple == 0
    np.testing.assert_array_equal(p[: shape[0], : shape[1]], x)  # cropping gives the input back


def test_pad_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="expected a 2-D image"):
        pad_to_multiple(np.zeros((2, 3, 4)), 8)


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "multiple"),
    [
        (4096, 1024, 128, 32),
        (4096, 2048, 128, 32),
        (3008, 2048, 128, 16),
        (512, 512, 64, 16),
        (6000, 1000, 200, 8),
    ],
)
def test_tile_starts_cover_with_overlap(
    length: int, tile: int, overlap: int, multiple: int
) -> None:
    starts = tile_starts(length, tile, overlap, multiple)
    assert starts[0] == 0 and starts[-1] + tile == length
    assert all(s % multiple == 0 for s in starts)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + tile - b >= overlap  # neighbours overlap by at least the requested amount


def test_plan_single_tile_and_weights() -> None:
    assert plan_tiles((2048, 2048), 2048, 32).n_tiles == 1
    plan = plan_tiles((4096, 3008), 1024, 32)
    assert plan.tile_shape == (1024, 1024)
    total = np.zeros(plan.shape, np.float32)
    for r, c in plan.origins:
        w = plan.weight(r, c)
        assert w.min() >= 0 and w.max() <= 1
        total[r : r + 1024, c : c + 1024] += w
    assert total.min() > 0.5  # every pixel gets a positive total weight
    # zero weight in the margin along interior edges, full weight along the image border
    w = plan.weight(plan.rows[1], 0)
    assert np.all(w[: plan.overlap // 4, 512] == 0)
    assert np.all(w[512, :10] == 1)


def test_run_tiled_of_pixelwise_function_is_exact() -> None:
    x = np.random.default_rng(1).random((1536, 1280), dtype=np.float32)
    plan = plan_tiles(x.shape, 512, 32, overlap=96)
    calls: list[tuple[int, ...]] = []

    def run(b: np.ndarray) -> np.ndarray:
        calls.append(b.shape)
        return np.sqrt(b)

    out = run_tiled(x, run, plan, max_batch=3)
    np.testing.assert_allclose(out, np.sqrt(x), rtol=1e-6)
    assert all(s[0] <= 3 and s[1:] == (1, 512, 512) for s in calls)
    assert sum(s[0] for s in calls) == plan.n_tiles


def test_tiled_4096_equals_untiled_and_has_no_seams(test_model: Path) -> None:
    img, truth = discs((4096, 4096), 3)
    untiled = Segmenter(Settings(tile_size=4096), backend="onnxruntime", model=test_model)
    tiled = Segmenter(Settings(tile_size=1024), backend="onnxruntime", model=test_model)
    a, b = untiled.segment(img), tiled.segment(img)
    assert a.extra["tiles"] == 1 and b.extra["tiles"] > 9
    assert b.mask.shape == (4096, 4096)
    # the test model's receptive field (±10 px) is inside the zero-weight margin: equal to
    # float precision, and masks differ only where the probability sits at the threshold
    np.testing.assert_allclose(b.probability, a.probability, atol=1e-5)
    changed = a.mask != b.mask
    assert changed.sum() <= 50
    assert np.all(np.abs(a.probability[changed] - 0.5) < 1e-3)
    rows, cols = plan_tiles((4096, 4096), 1024, 16).boundaries()
    assert rows and cols
    for r in rows:  # no line of changed pixels along a tile border
        assert changed[max(r - 2, 0) : r + 2].sum() <= 4
    for c in cols:
        assert changed[:, max(c - 2, 0) : c + 2].sum() <= 4
    assert iou(b.mask, truth) > 0.85


@pytest.mark.slow
@pytest.mark.parametrize(
    ("side", "n_tiles"),
    [(4096, 9), (3840, 4)],  # 3840 = 2048 + 1792: neighbours overlap by the minimum, 256 px
)
def test_tiled_shipped_model_no_seams(shipped_model: Path, side: int, n_tiles: int) -> None:
    from antema_fast.synth import generate

    s = generate(seed=11, shape=(side, side), regime="tem")  # both sizes: film-hole fields
    untiled = Segmenter(Settings(tile_size=4096), backend="onnxruntime", model=shipped_model)
    tiled = Segmenter(Settings(tile_size=2048), backend="onnxruntime", model=shipped_model)
    a, b = untiled.segment(s.image), tiled.segment(s.image)
    assert a.extra["tiles"] == 1 and b.extra["tiles"] == n_tiles
    diff = np.abs(a.probability - b.probability)
    assert float(diff.mean()) < 1e-3
    changed = a.mask != b.mask
    assert changed.mean() < 1e-3
    rows, cols = plan_tiles((side, side), 2048, 32).boundaries()
    bands = [(f"row {r}", np.s_[r - 2 : r + 2, :]) for r in rows]
    bands += [(f"column {c}", np.s_[:, c - 2 : c + 2]) for c in cols]
    assert bands
    # no seam: along every tile border (a 4 px band) the probability barely moves and almost none
    # of the particle pixels crossing the border change (a seam would cut through particles)
    for where, band in bands:
        particle, flipped = int(a.mask[band].sum()), int(changed[band].sum())
        assert float(diff[band].mean()) < 1e-3, f"seam at {where}"
        assert flipped <= max(0.02 * particle, 8), f"seam at {where}: {flipped} of {particle} px"


def test_flip_views_average_the_mirrored_outputs_aligned_back() -> None:
    x = np.random.default_rng(2).random((2, 1, 8, 12), dtype=np.float32)
    ramp = np.arange(12, dtype=np.float32)[None, None, None, :] + 100 * np.arange(8)[:, None]

    def run(b: np.ndarray) -> np.ndarray:  # not mirror-symmetric: adds a position ramp
        return b * 2 + ramp

    assert flip_views(run, 1) is run
    lr = np.flip(run(np.flip(x, -1)), -1)
    np.testing.assert_allclose(flip_views(run, 2)(x), (run(x) + lr) / 2, rtol=1e-6)
    ud = np.flip(run(np.flip(x, -2)), -2)
    both = np.flip(run(np.flip(x, (-2, -1))), (-2, -1))
    np.testing.assert_allclose(flip_views(run, 4)(x), (run(x) + lr + ud + both) / 4, rtol=1e-6)
    # a mirror-equivariant function is unchanged by the averaging
    np.testing.assert_allclose(flip_views(np.sqrt, 4)(x), np.sqrt(x), rtol=1e-6)
    for bad in (0, 3, 8):
        with pytest.raises(ValueError, match="flip views"):
            flip_views(run, bad)


def test_segmenter_flip_views_equal_segmenting_mirrored_images(shipped_model: Path) -> None:
    """On a multiple of the pad size, averaging mirrored views inside the segmenter equals
    segmenting the mirrored images one by one and mirroring the results back (the trained
    network is not mirror-symmetric, so the views differ)."""
    img = discs((256, 192), 4)[0]
    one = Segmenter(Settings(flip_views=1), backend="onnxruntime", model=shipped_model)
    four = Segmenter(Settings(flip_views=4), backend="onnxruntime", model=shipped_model)
    views = [
        np.flip(one.segment(np.flip(img, axes).copy()).probability, axes)
        for axes in ((0,), (1,), (0, 1))
    ]
    plain = one.segment(img).probability
    expected = (plain + sum(views)) / 4
    got = four.segment(img).probability
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got - plain).max() > 1e-3
    assert four.info()["flip_views"] == 4
