"""The :class:`Micrograph` object, the one exception type and the warnings of the readers."""

from __future__ import annotations

import math
import pathlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# calibrations whose x and y differ by more than this relative amount are reported
ANISOTROPY_TOLERANCE = 0.005


class ReadError(Exception):
    """A microscope file could not be read, or holds nothing that can be measured.

    The message names the file and says what was expected and what was found.
    """


class ReadWarning(UserWarning):
    """Base class of the warnings the readers give."""


class CalibrationWarning(ReadWarning):
    """The pixel calibration is unusual (for example x and y differ by more than 0.5 %)."""


class DataConversionWarning(ReadWarning):
    """The pixel values had to be converted (for example complex data to its modulus)."""


@dataclass(frozen=True)
class Calibration:
    """Pixel size along x (columns) and y (rows) in nm, and where it came from."""

    x_nm: float
    y_nm: float
    source: str


def _check_pixel_size(value: float, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a positive number of nm, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{what}: expected a positive finite number of nm, got {value!r}")
    return v


@dataclass(frozen=True)
class Micrograph:
    """One 2-D image with its pixel size in nm.

    Parameters
    ----------
    data : numpy.ndarray
        The image, 2-D, rows × columns, in the file's own dtype (native byte order); float32
        only where a conversion was needed (complex data → modulus, float16 → float32).
    pixel_size_nm : float
        The pixel size used for measurement: the geometric mean of x and y. NaN only when the
        image was read with ``require_calibration=False`` and no pixel size was found.
    pixel_size_x_nm, pixel_size_y_nm : float
        The pixel size along columns (x) and rows (y).
    pixel_size_source : str
        ``"user"`` when the caller gave it, ``"file:<tag or reader>"`` when read from the file,
        ``"none"`` when there is none.
    path : pathlib.Path or None
        The file read (the archive for a file inside a zip or gzip archive).
    frame_index : int or None
        Index of this frame in a stack, None for a single image.
    frame_count : int
        Number of frames of the stack the image comes from (1 for a single image).
    timestamp_s : float or None
        Time of the frame in seconds, when the file stores one (relative to the first frame
        for frame intervals, Unix time for absolute stamps; see ``metadata["timestamp_kind"]``).
    signal : str or None
        Which signal (detector, dataset, series) of a multi-signal file this is.
    metadata : dict
        What the file says about the acquisition where it says it: ``format``, ``instrument``,
        ``voltage_kV``, ``magnification``, ``acquisition_time`` (ISO 8601), ``exposure_s``,
        ``detector``, ``signals`` (all signal names), ``file_pixel_size_nm`` (the file's own
        calibration when the caller overrode it), ``colour_marks`` (the rectangles
        ``(x, y, width, height)`` of the coloured marks taken out of a grey micrograph exported
        with them; the analysis leaves them out), ``colour_scale_bar`` (one of those marks that
        is a scale bar, as :func:`antema_fast._scalebar.find_scale_bar` describes it).
    warnings : tuple of str
        Problems found while reading (anisotropic calibration, complex data, ...), also issued
        as Python warnings.

    Notes
    -----
    Pixel sizes are always in nm per pixel. x is the column axis and y the row axis.
    """

    data: np.ndarray
    pixel_size_nm: float
    pixel_size_x_nm: float
    pixel_size_y_nm: float
    pixel_size_source: str
    path: pathlib.Path | None
    frame_index: int | None = None
    frame_count: int = 1
    timestamp_s: float | None = None
    signal: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    _name: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """File stem (or the given name), with a ``_f0007``-style suffix for frames of a stack."""
        if self._name is not None:
            base = self._name
        elif self.path is not None:
            base = self.path.stem
        else:
            base = "array"
        if self.frame_index is not None and self.frame_count > 1:
            width = max(4, len(str(self.frame_count - 1)))
            return f"{base}_f{self.frame_index:0{width}d}"
        return base

    @property
    def is_calibrated(self) -> bool:
        """True when the pixel size is known (not NaN)."""
        return math.isfinite(self.pixel_size_nm)

    @classmethod
    def from_array(
        cls, data: np.ndarray, pixel_size_nm: float, *, name: str | None = None
    ) -> Micrograph:
        """Wrap an array the caller already has.

        Parameters
        ----------
        data : array_like
            A 2-D image (an RGB image whose channels are equal is accepted and made grey).
        pixel_size_nm : float
            Pixel size in nm (recorded with source ``"user"``).
        name : str, optional
            Name used for outputs; defaults to ``"array"``.

        Returns
        -------
        Micrograph

        Raises
        ------
        ReadError
            When the array is not an image (wrong number of dimensions, colour, NaN/inf).
        ValueError
            When ``pixel_size_nm`` is not a positive finite number.

        Examples
        --------
        >>> import numpy as np
        >>> m = Micrograph.from_array(np.zeros((4, 5), np.uint8), 0.5, name="blank")
        >>> m.pixel_size_nm, m.name, m.data.shape
        (0.5, 'blank', (4, 5))
        """
        px = _check_pixel_size(pixel_size_nm, "pixel_size_nm")
        label = name if name is not None else "array"
        notes: list[tuple[type[Warning], str]] = []
        metadata: dict[str, Any] = {"format": "array"}
        image = normalise_image(np.asarray(data), label, notes, metadata)
        for category, message in notes:
            warnings.warn(message, category, stacklevel=2)
        return cls(
            data=image,
            pixel_size_nm=px,
            pixel_size_x_nm=px,
            pixel_size_y_nm=px,
            pixel_size_source="user",
            path=None,
            metadata=metadata,
            warnings=tuple(m for _, m in notes),
            _name=label,
        )


COLOUR_MARK_SHARE = 0.05
COLOUR_MARK_GROUPS = 16
COLOUR_MARK_AREA = 0.1
COLOUR_MARK_REACH = 3


def colour_marks(coloured: np.ndarray) -> list[tuple[int, int, int, int]] | None:
    """The rectangles ``(x, y, width, height)`` that hold the coloured pixels of a grey
    micrograph's marks (a scale bar, its label, arrows, letters; also the non-finite pixels
    left inside a picture, :func:`non_finite_regions`), or None where they are not
    marks: more than :data:`COLOUR_MARK_SHARE` of the pixels, more than
    :data:`COLOUR_MARK_GROUPS` groups, or groups whose rectangles cover more than
    :data:`COLOUR_MARK_AREA` of the picture.

    Coloured pixels within :data:`COLOUR_MARK_REACH` px of each other form one group (the
    letters of a label, a bar and its anti-aliased edge), and each group's rectangle reaches
    that far beyond its pixels.

    Examples
    --------
    >>> c = np.zeros((100, 100), bool)
    >>> c[90:93, 50:80] = True     # a bar
    >>> c[80:86, 55:57] = True     # a letter above it
    >>> colour_marks(c)
    [(47, 77, 36, 19)]
    >>> c[::10, ::10] = True       # and a grid of dots: not marks
    >>> colour_marks(c) is None
    True
    """
    import cv2  # noqa: PLC0415 - only pictures with coloured pixels need it

    if np.count_nonzero(coloured) > COLOUR_MARK_SHARE * coloured.size:
        return None
    k = 2 * COLOUR_MARK_REACH + 1
    grown = cv2.dilate(coloured.view(np.uint8), np.ones((k, k), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    if n - 1 > COLOUR_MARK_GROUPS:
        return None
    rects = [tuple(int(v) for v in st[:4]) for st in stats[1:]]
    covered = np.zeros(coloured.shape, bool)
    for x, y, w, h in rects:
        covered[y : y + h, x : x + w] = True
    if np.count_nonzero(covered) > COLOUR_MARK_AREA * coloured.size:
        return None
    return rects  # type: ignore[return-value]


def colour_message(label: str, channels: int, coloured: np.ndarray) -> str:
    """Why a colour picture is refused: real colour, or coloured pixels that are not a few
    marks on a grey micrograph (:func:`colour_marks`)."""
    n = int(np.count_nonzero(coloured))
    share = n / coloured.size
    if share > COLOUR_MARK_SHARE:
        return (
            f"{label}: is a colour image ({channels} channels whose values differ in "
            f"{share:.0%} of the pixels); expected a greyscale micrograph. Convert it to "
            "greyscale first if the colour carries no information."
        )
    return (
        f"{label}: is a greyscale micrograph with coloured pixels ({n}, {share:.2%}) spread "
        "over the picture, not a few marks (a scale bar, arrows, text) that could be left out; "
        "colour is not specimen: export it without them, or convert it to greyscale yourself."
    )


def coloured_pixels(rgb: np.ndarray) -> np.ndarray:
    """Where the three channels of ``rgb`` (rows × columns × 3) differ: not grey."""
    return (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 0] != rgb[..., 2])


def _coloured_bar(coloured: np.ndarray) -> dict[str, Any] | None:
    """The scale bar among coloured marks (:func:`antema_fast._scalebar.find_scale_bar` of the
    coloured pixels), only where it stands alone: a bar that is part of a larger coloured shape
    (the edge of a frame, an arrow's shaft) is not one."""
    import cv2  # noqa: PLC0415

    from .._scalebar import find_scale_bar  # noqa: PLC0415 - pictures with coloured marks only

    mask = coloured.view(np.uint8)
    bar = find_scale_bar(mask)
    if bar is None:
        return None
    bx, by, bw, bh = bar["bar"]
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    _, _, w, h, _ = stats[labels[by + bh // 2, bx + bw // 2]]
    return bar if w <= bw + 4 and h <= bh + 4 else None


def _grey_with_marks(
    colour: np.ndarray, grey: np.ndarray, label: str, notes: list[tuple[type[Warning], str]]
) -> tuple[np.ndarray, dict[str, Any]]:
    """A grey micrograph exported with coloured marks: its grey channel with the marks' pixels
    set to the median of the grey ones, and what goes into the micrograph's metadata: the
    marks' rectangles (``colour_marks``, to leave out of the analysis) and, where one of them is
    a scale bar (:func:`antema_fast._scalebar.find_scale_bar` of the coloured pixels),
    ``colour_scale_bar`` (:func:`_coloured_bar`); a :class:`DataConversionWarning` names them.
    Refused when the colour is not a few marks."""
    coloured = ~grey
    rects = colour_marks(coloured)
    if rects is None:
        raise ReadError(colour_message(label, colour.shape[-1], coloured))
    found: dict[str, Any] = {"colour_marks": rects}
    bar = _coloured_bar(coloured)
    said = ""
    if bar is not None:
        found["colour_scale_bar"] = bar
        x, y = bar["bar"][:2]
        said = f"; one is a scale bar {bar['length_px']} px long (column {x}, row {y})"
    a = colour[..., 0].copy()
    a[coloured] = np.median(a[grey]).astype(a.dtype)
    listed = ", ".join(f"({x}, {y}, {w}, {h})" for x, y, w, h in rects)
    notes.append(
        (
            DataConversionWarning,
            f"{label}: a greyscale micrograph with coloured marks ({int(coloured.sum())} "
            f"pixels: a scale bar, arrows or text?); read as grey with the marks left out of "
            f"the analysis, as ignored regions (x, y, width, height): {listed}{said}",
        )
    )
    return a, found


#: The finite part of a picture with non-finite edge strips must be at least this many px wide
#: and high (:func:`non_finite_regions`).
MIN_FINITE_SIDE = 16


def _edge_run(full: np.ndarray) -> tuple[int, int]:
    """How many leading and trailing entries of the boolean vector ``full`` are True."""
    if full.all():
        return full.size, full.size
    return int(np.argmin(full)), int(np.argmin(full[::-1]))


def non_finite_regions(bad: np.ndarray) -> list[tuple[int, int, int, int]] | None:
    """The rectangles ``(x, y, width, height)`` that hold the non-finite (NaN, inf) pixels
    ``bad`` of a picture, or None where they cannot be left out as a few rectangles.

    Whole rows and columns at the edges (the fill of a drift-corrected or aligned frame:
    ``hyperspy``'s ``align2D`` fills with NaN, kept with ``crop=False`` or ``expand=True``)
    become strips along those edges, provided at least :data:`MIN_FINITE_SIDE` ×
    :data:`MIN_FINITE_SIDE` px between them are left; the pixels left over (dead pixels, a
    masked spot) must be a few small groups, as coloured marks are (:func:`colour_marks`).

    Examples
    --------
    >>> bad = np.zeros((100, 80), bool)
    >>> bad[:, :6] = True           # the left 6 columns of an aligned frame
    >>> bad[95:] = True             # and its bottom 5 rows
    >>> bad[40, 50] = True          # one dead pixel
    >>> non_finite_regions(bad)
    [(0, 95, 80, 5), (0, 0, 6, 100), (47, 37, 7, 7)]
    >>> bad[::4, ::4] = True        # NaN all over: not regions to leave out
    >>> non_finite_regions(bad) is None
    True
    """
    h, w = bad.shape
    top, bottom = _edge_run(np.all(bad, axis=1))
    left, right = _edge_run(np.all(bad, axis=0))
    if h - top - bottom < MIN_FINITE_SIDE or w - left - right < MIN_FINITE_SIDE:
        return None
    strips = [
        (0, 0, w, top),
        (0, h - bottom, w, bottom),
        (0, 0, left, h),
        (w - right, 0, right, h),
    ]
    rects = [r for r in strips if r[2] and r[3]]
    rest = bad.copy()
    rest[:top] = rest[h - bottom :] = False
    rest[:, :left] = rest[:, w - right :] = False
    if rest.any():
        marks = colour_marks(rest)
        if marks is None:
            return None
        rects += marks
    return rects


def _filled(
    a: np.ndarray, bad: np.ndarray, label: str, notes: list[tuple[type[Warning], str]]
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """``a`` with its non-finite pixels ``bad`` set to the median of the others, and their
    rectangles (:func:`non_finite_regions`), which the analysis leaves out; a
    :class:`DataConversionWarning` names them. Refused where they are not a few regions."""
    n = int(np.count_nonzero(bad))
    regions = non_finite_regions(bad) if n < a.size else None
    if regions is None:
        where = (
            ""
            if n == a.size
            else ", not in strips along the edges that leave a picture or in a few small "
            "groups that could be left out"
        )
        raise ReadError(
            f"{label}: {n} of {a.size} pixels are NaN or infinite{where}; expected finite values"
        )
    a = a.copy()
    a[bad] = np.median(a[~bad])
    listed = ", ".join(f"({x}, {y}, {w}, {h})" for x, y, w, h in regions)
    notes.append(
        (
            DataConversionWarning,
            f"{label}: {n} of {a.size} pixels are NaN or infinite (the fill of an aligned frame, "
            f"dead pixels?); set to the median and left out of the analysis, as ignored regions "
            f"(x, y, width, height): {listed}",
        )
    )
    return a, regions


def normalise_image(
    data: np.ndarray,
    label: str,
    notes: list[tuple[type[Warning], str]],
    found: dict[str, Any],
) -> np.ndarray:
    """Check one frame and bring it to a 2-D array in native byte order.

    RGB(A) whose colour channels are equal becomes grey; real colour is refused. A grey
    micrograph with a few coloured marks (:func:`colour_marks`) becomes grey with the marks'
    pixels set to the median grey; their rectangles (and a coloured scale bar among them) go
    into ``found``, which the caller adds to the micrograph's metadata (``colour_marks``, which
    the analysis leaves out, and ``colour_scale_bar``). Complex
    data becomes its modulus (with a :class:`DataConversionWarning`). NaN or inf pixels in
    strips along the edges or a few small groups (:func:`non_finite_regions`) are set to the
    median, their rectangles into ``found`` (``non_finite_regions``, which the analysis leaves
    out); others are refused with their count. ``notes`` receives ``(category, message)`` for
    every warning to give; the caller issues them (outside any exception translation).
    """
    a = np.asarray(data)
    if a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] > 1 and a.shape[1] > 1:
        colour = a[..., :3]
        grey = ~coloured_pixels(colour)
        if grey.all():
            a = colour[..., 0]
        else:
            a, marks = _grey_with_marks(colour, grey, label, notes)
            found.update(marks)
    if a.ndim != 2:
        raise ReadError(f"{label}: expected a 2-D image, got an array of shape {tuple(a.shape)}")
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise ReadError(
            f"{label}: expected a 2-D image, got shape {tuple(a.shape)} (a spectrum or a line, "
            "not an image)"
        )
    if np.iscomplexobj(a):
        notes.append((DataConversionWarning, f"{label}: complex pixel values; using their modulus"))
        a = np.abs(a).astype(np.float32)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8)
    elif a.dtype == np.float16:
        a = a.astype(np.float32)
    elif a.dtype.kind not in "uif":
        raise ReadError(f"{label}: unsupported pixel type {a.dtype}; expected integers or floats")
    if a.dtype.byteorder not in ("=", "|"):
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            a, regions = _filled(a, bad, label, notes)
            found["non_finite_regions"] = regions
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        a = a.copy()
    return a


def anisotropy_note(cal: Calibration, label: str) -> str | None:
    """A message when x and y differ by more than :data:`ANISOTROPY_TOLERANCE`, else None."""
    lo, hi = sorted((cal.x_nm, cal.y_nm))
    rel = hi / lo - 1.0
    if rel <= ANISOTROPY_TOLERANCE:
        return None
    return (
        f"{label}: x and y pixel sizes differ by {100 * rel:.3g} % (x = {cal.x_nm:.6g} nm, "
        f"y = {cal.y_nm:.6g} nm); measuring with their geometric mean "
        f"{math.sqrt(cal.x_nm * cal.y_nm):.6g} nm"
    )
