import math

import pytest
from antema_fast import Settings


def test_defaults_follow_spec():
    s = Settings()
    assert (s.separation, s.convexity_threshold, s.min_convexity, s.min_diameter_nm) == (
        "uecs",
        0.95,
        0.5,
        0.5,
    )
    assert s.max_holes == 10 and s.circularity == "corrected"


@pytest.mark.parametrize("s_nm", [0.02, 0.0175, 0.1, 0.5, 1.0])
def test_min_area_is_area_of_disc(s_nm):
    s = Settings()
    expected = math.ceil(math.pi / 4 * (0.5 / s_nm) ** 2)
    assert s.min_area_px(s_nm) == expected
    assert s.min_marker_area(s_nm) == max(expected, 30)


@pytest.mark.parametrize(
    "bad",
    [
        dict(separation="magic"),
        dict(convexity_threshold=1.5),
        dict(min_convexity=0.99),
        dict(min_diameter_nm=-1),
        dict(max_holes=-2),
        dict(threads=0),
        dict(circularity="x"),
        dict(segment_scale=0),
        dict(segment_scale=5.0),
        dict(segment_scale=float("nan")),
        dict(segment_scale="half"),
        dict(check_scale="yes"),
        dict(auto_scale=1),
        dict(flip_views=3),
        dict(flip_views=True),
        dict(min_measured_fraction=1.5),
        dict(min_measured_fraction=-0.1),
    ],
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        Settings(**bad)


def test_frozen_and_replace():
    s = Settings()
    with pytest.raises(AttributeError):
        s.separation = "none"  # type: ignore[misc]
    assert s.replace(separation="none").separation == "none"
    with pytest.raises(ValueError):
        s.replace(separation="nope")
    with pytest.raises(ValueError):
        s.min_area_px(0.0)
