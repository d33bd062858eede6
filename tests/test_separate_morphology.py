"""Morphology with UECS's exact conventions (SPEC section 3), in both directions.

The explicit formulas of the SPEC are the oracle; the test reference (``uecs_reference``, SciPy)
and the C++ core must both follow them, and they must agree on random masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import uecs_reference as ref
from antema_fast import _core


def spec_erode_square(x: np.ndarray) -> np.ndarray:
    """Keeps (r, c) iff (r, c), (r, c+1), (r+1, c), (r+1, c+1) are set; outside = foreground."""
    p = np.pad(x, ((0, 1), (0, 1)), constant_values=True)
    return p[:-1, :-1] & p[:-1, 1:] & p[1:, :-1] & p[1:, 1:]


def spec_dilate_square(x: np.ndarray) -> np.ndarray:
    """Sets (r, c) iff any of (r, c), (r, c-1), (r-1, c), (r-1, c-1) is set; outside = bg."""
    p = np.pad(x, ((1, 0), (1, 0)), constant_values=False)
    return p[1:, 1:] | p[1:, :-1] | p[:-1, 1:] | p[:-1, :-1]


def spec_erode_cross(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1, constant_values=True)
    return p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def spec_dilate_cross(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1, constant_values=False)
    return p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]


def core(x: np.ndarray, op: str, element: str) -> np.ndarray:
    return _core.morphology(np.ascontiguousarray(x, dtype=np.uint8), op, element).astype(bool)


def test_square_erosion_direction_single_block() -> None:
    x = np.zeros((6, 6), bool)
    x[1:4, 2:5] = True
    expected = np.zeros_like(x)
    expected[1:3, 2:4] = True  # loses its last row and column: origin at the top-left
    np.testing.assert_array_equal(core(x, "erode", "square"), expected)
    np.testing.assert_array_equal(ref.erode(x, True), expected)


def test_square_dilation_direction_single_pixel() -> None:
    x = np.zeros((5, 5), bool)
    x[2, 2] = True
    expected = np.zeros_like(x)
    expected[2:4, 2:4] = True  # grows down and right: the reflected element
    np.testing.assert_array_equal(core(x, "dilate", "square"), expected)
    np.testing.assert_array_equal(ref.dilate(x, True), expected)


def test_square_erosion_then_dilation_cancels() -> None:
    """Erosion and regrowth shift in opposite directions, so a rectangle comes back exactly."""
    x = np.zeros((12, 14), bool)
    x[3:9, 4:11] = True
    back = core(core(x, "erode", "square"), "dilate", "square")
    np.testing.assert_array_equal(back, x)
    # the wrong direction (dilating with the unreflected element) would move it by one pixel
    wrong = np.zeros_like(x)
    e = core(x, "erode", "square")
    wrong[:-1, :-1] = e[1:, 1:] | e[:-1, :-1] | e[1:, :-1] | e[:-1, 1:]
    assert not np.array_equal(wrong, x)


def test_border_conventions() -> None:
    """Erosion treats the outside as foreground, dilation as background."""
    full = np.ones((4, 5), bool)
    for element in ("square", "cross"):
        np.testing.assert_array_equal(core(full, "erode", element), full)
    edge = np.zeros((4, 5), bool)
    edge[3, 4] = True
    d = core(edge, "dilate", "square")
    assert d.sum() == 1 and d[3, 4]  # growth past the crop edge is lost
    c = core(edge, "dilate", "cross")
    assert c.sum() == 3


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("density", [0.3, 0.6, 0.85])
def test_core_reference_and_spec_agree(seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 25, size=2))
    x = rng.random(shape) < density
    cases = {
        ("erode", "square"): (spec_erode_square(x), ref.erode(x, True)),
        ("dilate", "square"): (spec_dilate_square(x), ref.dilate(x, True)),
        ("erode", "cross"): (spec_erode_cross(x), ref.erode(x, False)),
        ("dilate", "cross"): (spec_dilate_cross(x), ref.dilate(x, False)),
        ("open", "cross"): (spec_dilate_cross(spec_erode_cross(x)), ref.open_cross(x)),
        ("close", "cross"): (spec_erode_cross(spec_dilate_cross(x)), ref.close_cross(x)),
    }
    for (op, element), (spec, reference) in cases.items():
        np.testing.assert_array_equal(reference, spec, err_msg=f"reference {op} {element}")
        np.testing.assert_array_equal(core(x, op, element), spec, err_msg=f"core {op} {element}")


def test_morphology_rejects_bad_arguments() -> None:
    x = np.ones((3, 3), np.uint8)
    with pytest.raises(ValueError, match="element"):
        _core.morphology(x, "erode", "disk")
    with pytest.raises(ValueError, match="op"):
        _core.morphology(x, "thin", "cross")
    with pytest.raises(ValueError, match="cross only"):
        _core.morphology(x, "open", "square")
    with pytest.raises(TypeError):
        _core.morphology(x.astype(bool), "erode", "cross")  # noconvert: dtype must be uint8


def test_reference_perimeter_and_convexity_match_core() -> None:
    """The reference's own perimeter / convex image agree with the measurement core."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(2, 30, size=2))
        yy, xx = np.mgrid[:h, :w]
        x = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, 10)
            x |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if not x.any():
            continue
        st = _core.convex_stats(x.astype(np.uint8))
        assert ref.perimeter(x) == pytest.approx(st["perimeter"], abs=1e-9)
        np.testing.assert_array_equal(
            ref.convex_image(x), _core.convex_image(x.astype(np.uint8)).astype(bool)
        )
