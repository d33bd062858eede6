"""postprocess(): the gate, every exclusion reason, border removal after separation, specks,
the `separated` flag, watershed and `none`, settings and input validation."""

from __future__ import annotations

import math

import antema_fast as af
import numpy as np
import pandas as pd
import pytest
from antema_fast.measure import COLUMNS
from antema_fast.separate import EXCLUDED_COLUMNS, REASONS

S = 0.1  # nm/px: despeckle area ceil(pi/4 * 25) = 20 px, minimum marker area 30 px


def disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def touching_pair(shape=(80, 120), cy=40.0, cx=40.0, r=15.0, f=1.8) -> np.ndarray:
    return disc(shape, cy, cx, r) | disc(shape, cy, cx + f * r, r)


def comb(n_teeth: int = 8) -> np.ndarray:
    m = np.zeros((60, 10 + 6 * n_teeth), bool)
    m[45:50, 5 : 5 + 6 * n_teeth] = True
    for i in range(n_teeth):
        m[10:45, 5 + 6 * i : 7 + 6 * i] = True
    return m


def holed_square(n_holes: int, hole: tuple[int, int]) -> np.ndarray:
    """A square with n_holes holes of the given size (rows, cols), on a background margin."""
    m = np.zeros((90, 90), bool)
    m[5:85, 5:85] = True
    for i in range(n_holes):
        r, c = 10 + 14 * (i // 5), 10 + 14 * (i % 5)
        m[r : r + hole[0], c : c + hole[1]] = False
    return m


# --------------------------------------------------------------------------- the table


def test_table_columns_and_counts_are_complete() -> None:
    r = af.postprocess(touching_pair(), S)
    assert list(r.table.columns) == list(COLUMNS)
    assert list(r.excluded.columns) == list(EXCLUDED_COLUMNS)
    assert set(r.counts) == set(REASONS)
    assert sum(r.counts.values()) == len(r.excluded)
    assert len(r.table) == len(r.particles) == len(r.area_id)
    assert r.settings == af.Settings() and r.pixel_size_nm == S and r.image_shape == (80, 120)


def test_separated_flag_marks_exactly_the_separated_rows() -> None:
    """ANTEMA flags one row too many (`end-SepCount:end`); we flag exactly the split ones."""
    m = touching_pair((80, 200))
    m |= disc(m.shape, 40, 160, 12)  # a lone convex particle, listed after the pair
    r = af.postprocess(m, S)
    assert len(r.table) == 3
    assert r.table.separated.tolist() == [True, True, False]
    assert [p.separated for p in r.particles] == r.table.separated.tolist()
    n = af.postprocess(m, S, separation="none")
    assert not n.table.separated.any()


def test_separated_particles_keep_their_own_masks_and_may_overlap() -> None:
    r = af.postprocess(touching_pair(f=1.7), S)
    assert len(r.particles) == 2
    a, b = (p.to_mask(r.image_shape) for p in r.particles)
    union = touching_pair(f=1.7)
    assert not ((a | b) & ~union).any()  # regrown inside the area only


# --------------------------------------------------------------------------- the gate


def test_low_convexity_is_excluded_with_its_reason() -> None:
    m = np.zeros((70, 70), bool)
    c = comb()
    m[5 : 5 + c.shape[0], 5 : 5 + c.shape[1]] = c[:, :58]
    conv = af.regionprops_table(m, S).convexity.iloc[0]
    assert conv < 0.5
    r = af.postprocess(m, S)
    assert len(r.table) == 0
    row = r.excluded.iloc[0]
    assert row.reason == "low_convexity" and row.stage == "gate"
    assert row.area_px == m.sum() and r.counts["low_convexity"] == 1
    rr, cc = np.nonzero(m)
    assert (row.bbox_row_min, row.bbox_col_min, row.bbox_row_max, row.bbox_col_max) == (
        rr.min(),
        cc.min(),
        rr.max(),
        cc.max(),
    )
    # lowering min_convexity sends it to separation instead
    r2 = af.postprocess(m, S, min_convexity=0.0)
    assert r2.counts["low_convexity"] == 0


@pytest.mark.parametrize(("holes", "excluded"), [(10, False), (11, True), (15, True)])
def test_too_many_holes(holes: int, excluded: bool) -> None:
    m = holed_square(holes, (5, 5))  # 25 px holes: larger than the 20 px despeckle area
    r = af.postprocess(m, S)
    assert (r.counts["too_many_holes"] == 1) is excluded
    assert (len(r.table) == 0) is excluded
    if not excluded:
        assert r.table.area_px.iloc[0] == 80 * 80  # holes filled in the cleaning step
        assert r.table.holes.iloc[0] == 0


def test_small_holes_do_not_count() -> None:
    """Holes smaller than the despeckle area are filled before the gate counts holes."""
    m = holed_square(15, (4, 4))  # 16 px < 20 px
    r = af.postprocess(m, S)
    assert r.counts["too_many_holes"] == 0 and len(r.table) == 1


def test_max_holes_setting() -> None:
    m = holed_square(11, (5, 5))
    assert af.postprocess(m, S, max_holes=11).counts["too_many_holes"] == 0


# ------------------------------------------------------------------- border after separation


def test_border_removed_after_separation_keeps_the_free_half() -> None:
    m = touching_pair(shape=(80, 100), cx=14.0)  # the left disc touches column 0
    assert m[:, 0].any()
    r = af.postprocess(m, S)
    assert len(r.table) == 1
    assert r.table.separated.iloc[0]
    assert r.table.centroid_x_px.iloc[0] == pytest.approx(14 + 27, abs=1.5)
    assert r.counts["border"] == 1
    row = r.excluded[r.excluded.reason == "border"].iloc[0]
    assert row.stage == "cleaning" and row.bbox_col_min == 0


@pytest.mark.parametrize("side", ["top", "bottom", "left", "right"])
def test_border_on_every_side(side: str) -> None:
    m = np.zeros((50, 60), bool)
    sl = {
        "top": np.s_[0:10, 20:30],
        "bottom": np.s_[40:50, 20:30],
        "left": np.s_[20:30, 0:10],
        "right": np.s_[20:30, 50:60],
    }[side]
    m[sl] = True
    m[20:30, 25:35] |= side in ("top", "bottom")  # some shapes stay convex either way
    for sep in ("uecs", "watershed", "none"):
        r = af.postprocess(m, S, separation=sep)
        assert r.counts["border"] >= 1 and not any(
            p.bbox[0] == 0 or p.bbox[1] == 0 or p.bbox[2] == 49 or p.bbox[3] == 59
            for p in r.particles
        )


# --------------------------------------------------------------------------- specks


@pytest.mark.parametrize("s", [0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
def test_specks_below_half_a_nanometre(s: float) -> None:
    amin = math.ceil(math.pi / 4 * (0.5 / s) ** 2 - 1e-9)
    assert amin == af.Settings().min_area_px(s)
    side = int(math.ceil(math.sqrt(amin))) + 2
    m = np.zeros((2 * side + 12, 2 * side + 12), bool)

    def blob(r0: int, c0: int, n: int) -> None:
        """n pixels filled row by row in a side-wide box (convex, 8-connected)."""
        flat = m[r0 : r0 + side, c0 : c0 + side].reshape(-1).copy()
        flat[:n] = True
        m[r0 : r0 + side, c0 : c0 + side] = flat.reshape(side, side)

    blob(3, 3, amin)  # exactly the despeckle area: kept
    if amin > 1:
        blob(side + 6, side + 6, amin - 1)  # one pixel less: a speck
    r = af.postprocess(m, s)
    assert len(r.table) == 1 and r.table.area_px.iloc[0] == amin
    if amin > 1:
        sp = r.excluded[r.excluded.reason == "speck"]
        assert len(sp) == 1 and sp.area_px.iloc[0] == amin - 1
        assert sp.stage.iloc[0] == "despeckle" and sp.area_id.iloc[0] == -1
        assert sp.area_nm2.iloc[0] == pytest.approx((amin - 1) * s * s)


def test_min_diameter_setting() -> None:
    m = np.zeros((40, 40), bool)
    m[10:16, 10:16] = True  # 36 px
    assert len(af.postprocess(m, 0.1).table) == 1
    assert af.postprocess(m, 0.1, min_diameter_nm=1.0).counts["speck"] == 1  # 79 px needed


# --------------------------------------------------------------------------- methods


def test_watershed_separates_touching_equal_discs() -> None:
    for d in (24, 26, 28):  # 1.6 R to 1.87 R: convexity <= 0.95, so the gate sends them on
        m = touching_pair(f=d / 15.0)  # whole-pixel distance: the two discs are mirror images
        r = af.postprocess(m, S, separation="watershed")
        assert len(r.table) == 2 and r.table.separated.all()
        a, b = r.table.area_px
        assert abs(a - b) <= 0.02 * a
        # watershed lines removed: the two particles do not touch
        ma, mb = (p.to_mask(r.image_shape) for p in r.particles)
        from scipy.ndimage import binary_dilation

        assert not (binary_dilation(ma, np.ones((3, 3), bool)) & mb).any()


def test_none_measures_as_is_and_flags_non_convex() -> None:
    m = touching_pair((80, 200))
    m |= disc(m.shape, 40, 160, 12)
    r = af.postprocess(m, S, separation="none")
    assert len(r.table) == 2
    assert r.table.non_convex.tolist() == [True, False]
    assert (r.table.convexity <= 0.95).tolist() == [True, False]
    assert r.table.area_px.iloc[0] == touching_pair((80, 200)).sum()
    # areas that the gate would exclude are measured too
    c = np.zeros((70, 70), bool)
    c[5:65, 5:63] = comb()[:, :58]
    assert len(af.postprocess(c, S, separation="none").table) == 1


def test_empty_and_full_masks() -> None:
    for sep in ("uecs", "watershed", "none"):
        e = af.postprocess(np.zeros((20, 30), bool), S, separation=sep)
        assert len(e.table) == 0 and list(e.table.columns) == list(COLUMNS)
        assert len(e.excluded) == 0 and e.n_areas == 0
        f = af.postprocess(np.ones((20, 30), bool), S, separation=sep)
        assert len(f.table) == 0 and f.counts["border"] == 1


def test_all_reasons_in_one_frame() -> None:
    m = np.zeros((300, 300), bool)
    m[150:152, 150:152] = True  # speck
    m[0:20, 100:130] = True  # border
    c = comb()[:, :58]
    m[200 : 200 + c.shape[0], 20 : 20 + c.shape[1]] = c  # low convexity
    m[30:120, 180:270] = holed_square(12, (5, 5))[:90, :90]  # too many holes
    m |= touching_pair((300, 300), cy=80, cx=40, r=15, f=1.8)
    r = af.postprocess(m, S)
    for reason in ("speck", "border", "low_convexity", "too_many_holes"):
        assert r.counts[reason] >= 1, reason
    assert len(r.table) == 2
    assert isinstance(r.excluded.reason.dtype, pd.CategoricalDtype)


# --------------------------------------------------------------------------- settings, errors


def test_settings_object_and_overrides() -> None:
    m = touching_pair()
    st = af.Settings(separation="none")
    assert len(af.postprocess(m, S, st).table) == 1
    assert len(af.postprocess(m, S, st, separation="uecs").table) == 2
    assert af.postprocess(m, S, st, separation="uecs").settings.separation == "uecs"


def test_bad_inputs() -> None:
    m = touching_pair()
    with pytest.raises(ValueError, match="separation"):
        af.postprocess(m, S, separation="magic")
    with pytest.raises(TypeError, match="settings"):
        af.postprocess(m, S, settings={"separation": "none"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pixel_size_nm"):
        af.postprocess(m, 0.0)
    with pytest.raises(TypeError, match="dtype"):
        af.postprocess(m.astype(float), S)
    with pytest.raises(ValueError, match="2-D"):
        af.postprocess(np.zeros((3, 3, 3), bool), S)
    with pytest.raises(TypeError):
        af.postprocess(m, S, not_a_setting=1)


def test_gil_released_threads_agree() -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Frames of different sizes in turn: the core keeps its frame buffers per thread and reuses
    # them for the next, smaller or larger, frame.
    frames = [touching_pair(f=f) for f in (1.6, 1.7, 1.8, 1.9)]
    rng = np.random.default_rng(3)
    for size in (64, 300, 97, 513):
        big = np.zeros((size, size + 7), bool)
        for _ in range(size // 8):
            y, x = rng.integers(0, size), rng.integers(0, size + 7)
            big |= disc(big.shape, y, x, float(rng.uniform(3, 14)))
        frames.append(big)
    frames = frames * 3

    def areas(fr: np.ndarray) -> list[int]:
        return sorted(int(a) for a in af.postprocess(fr, S).table.area_px)

    serial = [areas(fr) for fr in frames]
    with ThreadPoolExecutor(4) as ex:
        threaded = list(ex.map(areas, frames))
    assert serial == threaded
    assert serial[: len(serial) // 3] * 3 == serial  # repeated frames give the same tables


@pytest.mark.parametrize("gap", [1, 2, 4])
@pytest.mark.parametrize("separation", ["none", "uecs"])
def test_nested_particle_in_a_ring_matches_reference(gap: int, separation: str) -> None:
    """Holes are filled per mask background component, also around a particle nested in a ring
    (a thin enough gap is filled and joins them, as filling the whole mask's small holes does)."""
    import uecs_reference as ref

    yy, xx = np.mgrid[:90, :90]
    d2 = (yy - 45.0) ** 2 + (xx - 45.0) ** 2
    inner = 6.0
    m = (d2 <= inner**2) | ((d2 >= (inner + gap) ** 2) & (d2 <= 30.0**2))
    m[44:47, 60:63] = False  # a small hole in the ring itself
    for s in (0.1, 0.05):
        got = af.postprocess(m, s, separation=separation)
        expected = ref.postprocess(m, s, separation=separation)
        want = sorted(int(b.sum()) for _, _, b, _ in expected.particles)
        assert sorted(got.table.area_px) == want
        assert sorted(got.excluded.reason.astype(str)) == sorted(w for w, _ in expected.excluded)


def test_measure_is_the_postprocess_table() -> None:
    m = touching_pair((80, 200))
    m |= disc(m.shape, 40, 160, 12)
    pd.testing.assert_frame_equal(af.measure(m, S), af.postprocess(m, S).table)
    pd.testing.assert_frame_equal(
        af.measure(m, S, separation="none", circularity="legacy"),
        af.postprocess(m, S, separation="none", circularity="legacy").table,
    )
    st = af.Settings(separation="watershed", convexity_threshold=0.98)
    pd.testing.assert_frame_equal(af.measure(m, S, settings=st), af.postprocess(m, S, st).table)
    # a keyword given to measure() overrides the settings object; None keeps the settings' value
    assert len(af.measure(m, S, settings=st, separation="none")) == 2
    assert len(af.measure(m, S, settings=st, separation=None)) == 3
