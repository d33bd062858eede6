"""The rules of the scale check that need no model: how wide a region is, and whether the
full-scale mask holds a wide particle whole (``antema_fast.segment._segmenter``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from antema_fast.segment._segmenter import (
    AGGREGATE_RAGGED_MARGIN,
    _captured,
    _region_convexity,
    _wide_fraction,
    _wide_regions,
    _widths,
)


def _disc(shape: tuple[int, int], centre: tuple[float, float], d: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= (d / 2.0) ** 2


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return lab, stats


def test_width_is_the_largest_inscribed_disc_not_the_area() -> None:
    big = _disc((400, 600), (100, 100), 100)
    # a chain of three touching 50-px discs: the area of an 87-px disc, 50 px wide
    chain = _disc((400, 600), (300, 200), 50) | _disc((400, 600), (300, 248), 50)
    chain |= _disc((400, 600), (300, 296), 50)
    small = _disc((400, 600), (100, 400), 30)
    mask = big | chain | small
    lab, stats = _components(mask)
    w = _widths(mask, lab, stats, 60.0)
    by_label = {int(lab[100, 100]): 100, int(lab[300, 248]): 50}
    for i, expected in by_label.items():
        assert w[i - 1] == pytest.approx(expected, abs=3)
    assert w[int(lab[100, 400]) - 1] == 0  # under the area that could reach 60 px: not measured
    eq = 2 * np.sqrt(stats[int(lab[300, 248]), cv2.CC_STAT_AREA] / np.pi)
    assert eq > 80  # what an equivalent-diameter rule would have called wide


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("whole", True),
        ("hollow", False),
        ("half", False),
        ("broken", False),
        ("ragged", False),
        ("absent", False),
        ("shrunk", False),
    ],
)
def test_a_wide_particle_is_captured_only_when_held_whole_and_convex(
    name: str, expected: bool
) -> None:
    shape = (300, 300)
    region = _disc(shape, (150, 150), 160)
    full = region.copy()
    if name == "hollow":
        full &= ~_disc(shape, (150, 150), 100)
    elif name == "half":
        full[:, 150:] = False
    elif name == "broken":
        full[145:155, :] = False
        full[:, 145:155] = False
    elif name == "ragged":
        # notches of 6 px all around the outline: mostly there, but not convex
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        angle = np.arctan2(yy - 150, xx - 150)
        notch = (np.sin(angle * 40) > 0) & ~_disc(shape, (150, 150), 148)
        full &= ~notch
    elif name == "absent":
        full[:] = False
    elif name == "shrunk":
        full = _disc(shape, (150, 150), 120)  # the rim lost: 56 % of the area
    lab, stats = _components(full)
    assert _captured(region, lab, stats, 4, 0.85, 0.95) is expected
    # where the region is an aggregate (no convexity asked of it), a ragged outline is the
    # full-scale pass's own business; the rest is judged the same
    assert _captured(region, lab, stats, 4, 0.85, None) is (expected or name == "ragged")


def _notched(mask: np.ndarray, centre: tuple[float, float], d: float) -> np.ndarray:
    """``mask`` with notches of 6 px cut into the rim of the disc at ``centre``, ``d`` wide."""
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    angle = np.arctan2(yy - centre[0], xx - centre[1])
    return mask & ~((np.sin(angle * 40) > 0) & ~_disc(mask.shape, centre, d - 12))


def test_only_convex_regions_are_single_particles() -> None:
    shape = (300, 500)
    one = _disc(shape, (150, 120), 160)
    pair = _disc(shape, (150, 330), 100) | _disc(shape, (150, 420), 100)
    lab, stats = _components(one | pair)
    ids = np.unique(lab[lab > 0])
    conv = _region_convexity(lab, stats, ids)
    assert set(conv) == {int(i) for i in ids}
    assert conv[int(lab[150, 120])] > 0.95 > conv[int(lab[150, 330])] > 0.8


@pytest.mark.parametrize(
    ("name", "captured"), [("same", True), ("deeper_neck", True), ("ragged", False)]
)
def test_a_wide_aggregate_is_captured_unless_its_full_scale_outline_is_more_ragged(
    name: str, captured: bool
) -> None:
    """Two touching 160-px particles: the coarse pass draws them as one non-convex region. The
    full-scale outline is kept where it is as smooth as the coarse one or parts the members
    better (a deeper neck); drawn with notches all around (what a network does to particles
    past its range), it is not, and the region is taken from the reduced-scale pass, whose
    smooth outline the separation parts into two particles instead of a dozen fragments."""
    shape = (300, 500)
    coarse = _disc(shape, (150, 170), 160) | _disc(shape, (150, 310), 160)
    if name == "same":
        full = coarse.copy()
    elif name == "deeper_neck":
        full = _disc(shape, (150, 165), 158) | _disc(shape, (150, 315), 158)
    else:
        full = _notched(_notched(coarse, (150, 170), 160), (150, 310), 160)
    lab, stats = _components(coarse)
    widths = _widths(coarse, lab, stats, 80.0)
    conv = _region_convexity(lab, stats, np.array([1]))
    lab_full, stats_full = _components(full)
    j = int(lab_full[150, 170])
    c_full = _region_convexity(lab_full, stats_full, np.array([j]))[j]
    assert conv[1] < 0.95  # an aggregate where it was drawn
    assert (c_full >= conv[1] - AGGREGATE_RAGGED_MARGIN) is captured
    missed, fields, n_captured = _wide_regions(
        lab, widths, 80.0, lab_full, stats_full, 2, 0.85, 0.95, conv
    )
    assert fields == 0
    assert (missed, n_captured) == (([], 1) if captured else ([1], 0))


def test_an_aggregate_holding_particles_in_the_models_range_keeps_its_full_scale_outline() -> None:
    """A 140-px particle with eight 30-px ones touching it: the coarse pass draws one blob, the
    full-scale pass each small particle with its neck, which makes its outline far less convex
    than the blob's. Most of the blob is narrower than 80 px, so it is not an aggregate of wide
    particles and no convexity is asked of the full-scale outline; two touching 140-px
    particles are one."""
    shape = (400, 400)
    big = _disc(shape, (200, 200), 140)
    ring = [(200 + 84 * np.sin(a), 200 + 84 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 9)[:-1]]
    full = big.copy()
    for c in ring:
        full |= _disc(shape, c, 30)
    coarse = cv2.dilate(full.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # necks filled
    assert _wide_fraction(coarse, 80.0) < 0.8
    pair = _disc(shape, (200, 130), 140) | _disc(shape, (200, 265), 140)
    assert _wide_fraction(pair, 80.0) > 0.9
    lab, stats = _components(coarse)
    conv = _region_convexity(lab, stats, np.array([1]))
    lab_full, stats_full = _components(full)
    j = int(lab_full[200, 200])
    assert _region_convexity(lab_full, stats_full, np.array([j]))[j] < conv[1] - 0.05
    missed, _, n_captured = _wide_regions(
        lab, _widths(coarse, lab, stats, 80.0), 80.0, lab_full, stats_full, 8, 0.7, 0.95, conv
    )
    assert (missed, n_captured) == ([], 1)
