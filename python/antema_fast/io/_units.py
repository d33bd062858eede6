"""Length units as microscope files spell them, normalised to nanometres.

Every reader hands the unit string it found to :func:`classify_unit`, which says whether the
axis is a real-space length (and the factor to nm), a reciprocal length (a diffraction pattern),
an energy (a spectrum), a time, or something unrecognised. Nothing here guesses: an unknown
spelling is reported as unknown, never taken as nm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

UnitKind = Literal["length", "reciprocal", "energy", "time", "none", "unknown"]

# canonical spelling -> nm per unit
_LENGTH_NM: dict[str, float] = {
    "m": 1e9,
    "cm": 1e7,
    "mm": 1e6,
    "um": 1e3,
    "nm": 1.0,
    "angstrom": 0.1,
    "pm": 1e-3,
    "inch": 2.54e7,
}

# lower-cased spellings (after removing spaces, underscores and dots) -> canonical
_ALIASES: dict[str, str] = {
    "m": "m",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "cm": "cm",
    "centimeter": "cm",
    "centimeters": "cm",
    "centimetre": "cm",
    "centimetres": "cm",
    "mm": "mm",
    "millimeter": "mm",
    "millimeters": "mm",
    "millimetre": "mm",
    "millimetres": "mm",
    "um": "um",
    "µm": "um",  # MICRO SIGN
    "μm": "um",  # GREEK SMALL LETTER MU
    "u": "um",
    "µ": "um",
    "μ": "um",
    "micron": "um",
    "microns": "um",
    "micrometer": "um",
    "micrometers": "um",
    "micrometre": "um",
    "micrometres": "um",
    "nm": "nm",
    "nanometer": "nm",
    "nanometers": "nm",
    "nanometre": "nm",
    "nanometres": "nm",
    "å": "angstrom",  # LATIN CAPITAL LETTER A WITH RING ABOVE, lower-cased
    "Å": "angstrom",  # ANGSTROM SIGN
    "ang": "angstrom",
    "angstrom": "angstrom",
    "angstroms": "angstrom",
    "angström": "angstrom",
    "pm": "pm",
    "picometer": "pm",
    "picometers": "pm",
    "picometre": "pm",
    "picometres": "pm",
    "in": "inch",
    "inch": "inch",
    "inches": "inch",
}

_ENERGY = {"ev", "kev", "mev", "joule", "j"}
_TIME = {"s", "sec", "second", "seconds", "ms", "us", "µs", "ns", "min", "h"}
_EMPTY = {"", "[]", "none", "pixel", "pixels", "px", "pix", "unitless", "1"}


@dataclass(frozen=True)
class Unit:
    """What a unit string means.

    Attributes
    ----------
    kind : {"length", "reciprocal", "energy", "time", "none", "unknown"}
        ``"none"`` means the file stores no unit (an uncalibrated axis).
    nm_per_unit : float or None
        For lengths: how many nm one unit is. For reciprocal lengths: how many nm⁻¹ one unit
        is. None otherwise.
    text : str
        The spelling found in the file.
    """

    kind: UnitKind
    nm_per_unit: float | None
    text: str


def _normalise(text: str) -> str:
    s = text.strip()
    # ImageJ escapes the micro sign as a Java unicode escape
    s = s.replace("\\u00B5", "µ").replace("\\u00b5", "µ").replace("\\u03BC", "µ")
    s = s.replace("\\u00C5", "Å").replace("\\u00c5", "Å")
    s = re.sub(r"[\s_.]", "", s)
    return s


def _length(s: str) -> str | None:
    if s == "A":  # capital A is Angstrom in DM and MRC; a lower-case "a" is not accepted
        return "angstrom"
    if s in _ALIASES:
        return _ALIASES[s]
    return _ALIASES.get(s.lower())


def classify_unit(text: object) -> Unit:
    """Classify a unit string from a file.

    Parameters
    ----------
    text : object
        The unit as found (str or bytes; anything else is treated as its ``str``).

    Returns
    -------
    Unit
        The kind and, for lengths and reciprocal lengths, the factor to nm (nm⁻¹).

    Examples
    --------
    >>> classify_unit("µm").nm_per_unit
    1000.0
    >>> classify_unit("n_m").nm_per_unit
    1.0
    >>> classify_unit("1/nm").kind
    'reciprocal'
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    raw = "" if text is None else str(text)
    s = _normalise(raw)
    if s.lower() in _EMPTY:
        return Unit("none", None, raw)
    canon = _length(s)
    if canon is not None:
        return Unit("length", _LENGTH_NM[canon], raw)
    recip = re.fullmatch(r"1/(.+)", s) or re.fullmatch(r"(.+?)(?:\^?-1|⁻¹)", s)
    if recip:
        inner = _length(recip.group(1))
        if inner is not None:
            return Unit("reciprocal", 1.0 / _LENGTH_NM[inner], raw)
        return Unit("reciprocal", None, raw)
    low = s.lower()
    if low in _ENERGY:
        return Unit("energy", None, raw)
    if low in _TIME:
        return Unit("time", None, raw)
    return Unit("unknown", None, raw)


def seconds_per_unit(text: object) -> float | None:
    """Seconds per unit of a time axis (``s``, ``ms``, ``µs``, ``ns``, ``min``, ``h``), or None."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    s = _normalise("" if text is None else str(text)).lower()
    table = {
        "s": 1.0,
        "sec": 1.0,
        "second": 1.0,
        "seconds": 1.0,
        "ms": 1e-3,
        "us": 1e-6,
        "µs": 1e-6,
        "ns": 1e-9,
        "min": 60.0,
        "h": 3600.0,
    }
    return table.get(s)


def length_to_nm(value: float, unit: object) -> float | None:
    """``value`` in ``unit`` converted to nm, or None when the unit is not a length.

    Examples
    --------
    >>> length_to_nm(2.0, "Å")
    0.2
    """
    u = classify_unit(unit)
    if u.kind != "length" or u.nm_per_unit is None:
        return None
    return float(value) * u.nm_per_unit
