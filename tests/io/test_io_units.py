"""Unit strings as microscope files spell them."""

from __future__ import annotations

import pytest
from antema_fast.io._units import classify_unit, length_to_nm, seconds_per_unit


@pytest.mark.parametrize(
    ("text", "nm"),
    [
        ("m", 1e9),
        ("meter", 1e9),
        ("metres", 1e9),
        ("cm", 1e7),
        ("mm", 1e6),
        ("µm", 1e3),  # micro sign U+00B5
        ("μm", 1e3),  # Greek mu U+03BC
        ("um", 1e3),
        ("u", 1e3),
        ("micron", 1e3),
        ("Micrometer", 1e3),
        ("\\u00B5m", 1e3),  # ImageJ's escaped micro sign
        ("nm", 1.0),
        ("n_m", 1.0),  # Berkeley EMD spelling
        ("n m", 1.0),
        ("NM", 1.0),
        ("nanometer", 1.0),
        ("Å", 0.1),  # U+00C5
        ("\u212b", 0.1),  # ANGSTROM SIGN
        ("A", 0.1),
        ("angstrom", 0.1),
        ("Angstroms", 0.1),
        ("pm", 1e-3),
        ("picometre", 1e-3),
        ("inch", 2.54e7),
        (b"n_m", 1.0),
    ],
)
def test_length_units_to_nm(text: str, nm: float) -> None:
    u = classify_unit(text)
    assert u.kind == "length"
    assert u.nm_per_unit == pytest.approx(nm, rel=1e-12)


@pytest.mark.parametrize("text", ["1/nm", "1/m", "nm^-1", "1/Å", "1/µm", "m-1", "1 / nm"])
def test_reciprocal_units(text: str) -> None:
    assert classify_unit(text).kind == "reciprocal"


def test_reciprocal_factor() -> None:
    assert classify_unit("1/m").nm_per_unit == pytest.approx(1e-9)
    assert classify_unit("1/Å").nm_per_unit == pytest.approx(10.0)


@pytest.mark.parametrize("text", ["eV", "keV", "meV"])
def test_energy_units(text: str) -> None:
    assert classify_unit(text).kind == "energy"


@pytest.mark.parametrize("text", ["", "[]", "pixel", "px", None])
def test_no_unit(text: object) -> None:
    assert classify_unit(text).kind == "none"


@pytest.mark.parametrize("text", ["units1", "furlong", "a", "nmm"])
def test_unknown_units_are_not_guessed(text: str) -> None:
    u = classify_unit(text)
    assert u.kind == "unknown"
    assert u.nm_per_unit is None


def test_length_to_nm() -> None:
    assert length_to_nm(2.0, "Å") == pytest.approx(0.2)
    assert length_to_nm(0.0012490136, "µm") == pytest.approx(1.2490136)
    assert length_to_nm(1.0, "1/nm") is None
    assert length_to_nm(1.0, "eV") is None


def test_time_units() -> None:
    assert classify_unit("s").kind == "time"
    assert seconds_per_unit("s") == 1.0
    assert seconds_per_unit("ms") == pytest.approx(1e-3)
    assert seconds_per_unit("nm") is None
