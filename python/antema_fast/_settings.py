"""The one frozen settings object that travels through every entry point.

API calls, the command line, streams and Dask workers all take a :class:`Settings`; no parameter
is declared twice with two defaults. Names keep ANTEMA's meaning in snake_case.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Separation = Literal["uecs", "watershed", "none"]
Circularity = Literal["corrected", "legacy"]
Backend = Literal["auto", "onnxruntime", "tensorrt", "threshold"]

_SEPARATIONS = ("uecs", "watershed", "none")
_CIRCULARITIES = ("corrected", "legacy")
_BACKENDS = ("auto", "onnxruntime", "tensorrt", "threshold")


def check_segment_scale(value: object, name: str) -> None:
    """Refuse a resize factor for segmentation outside [0.01, 4] (``name`` in the message)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.01 <= value <= 4.0):
        raise ValueError(f"{name}: expected a number in [0.01, 4], got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Every parameter of the analysis, with the defaults of the SPEC (ANTEMA's where it has one).

    Parameters
    ----------
    separation : {"uecs", "watershed", "none"}
        How overlapping particles are separated. ``"uecs"`` is ultimate erosion of convex shapes.
    convexity_threshold : float
        Areas with convexity above this are single particles (ANTEMA: 0.95).
    min_convexity : float
        Areas with convexity below this are excluded as ``low_convexity`` (ANTEMA: 0.5).
    min_diameter_nm : float
        Despeckle size: areas smaller than a disc of this diameter are removed, holes smaller
        than it are filled.
    max_holes : int
        Areas with more holes than this are excluded as ``too_many_holes`` (ANTEMA: 10).
    min_contrast_z : float
        Off (0) by default, beyond SPEC and ANTEMA. When > 0, a particle whose mean intensity
        differs from that of the unsegmented pixels 2–6 px around it by fewer than this
        many standard errors (:func:`antema_fast.separate.contrast_z`) is excluded as
        ``low_contrast``: in low-dose images most of such "particles" are noise the model took
        for particles. 3 is a good value (``docs/separation.md``); it needs the image, so it
        applies in ``analyze``, the stream and archive runs, and ``postprocess(..., image=…)``.
    min_marker_area_px : int
        Floor of the UECS minimum marker area in pixels (ANTEMA: 30).
    circularity : {"corrected", "legacy"}
        ``"corrected"``: MATLAB ≥ R2023a bias-corrected circularity; ``"legacy"``: 4πA/P².
    backend : {"auto", "onnxruntime", "tensorrt", "threshold"}
        Segmentation engine.
    model : str or None
        Name of a shipped model or path to an ONNX file; None is the default shipped model.
    threads : int or None
        Threads for the segmentation engine; None lets the engine decide.
    tile_size : int
        Images larger than this (either side, px) are segmented in overlapping tiles.
    segment_scale : float
        Resize factor applied to every image before segmentation (the mask and probability map
        come back at full size; measurement always uses the full-size mask). The shipped model
        was trained on particles about 3–85 px wide: use 0.5 down to 0.05 for images whose
        particles are hundreds of pixels across (e.g. HRTEM / atomic-resolution STEM of 5–20 nm
        particles), so that they land in that range. 1 = native resolution.
    flip_views : {1, 2, 4}
        Segment each image in this many mirrored views (as is; left–right; up–down and both)
        and average the probabilities: a little more accurate (shipped model, synthetic test
        set: see the model card), 2 or 4 times the segmentation time. 1 = one pass.
    check_scale : bool
        ``analyze`` segments each image (of at least 512 px) once more at 1/8 scale and warns,
        with a suggested ``segment_scale``, when that finds particles wider than the model's
        range which the full-scale segmentation missed, broke up, hollowed out or drew ragged
        (see ``Segmenter.check_scale``).
    auto_scale : bool
        Act on that finding instead of only warning: segment the image again at the suggested
        scale and take from there the wide particles the full-scale mask does not hold whole,
        keeping the full-scale outlines of all other particles (``Segmenter.merge_wide``;
        recorded in the result's provenance as ``scale_check["merged_scale"]``). Needs
        ``check_scale``; off → the warning only.
    min_measured_fraction : float
        ``analyze`` warns when less than this share of the segmented particle area, border
        effects aside, ends up in measured particles (the rest went to exclusions such as
        ``marker_too_small``): the table then misses much of what was segmented, typically
        because particles are too few pixels wide for UECS. 0 turns the warning off. The share
        is kept in the result's provenance (``quality``) either way
        (:func:`antema_fast.pipeline.quality`).
    ignore_regions : tuple of (x, y, width, height)
        Rectangles of the image, in pixels, that are not part of the specimen: a burned-in scale
        bar and its label, a data bar, a text box. ``x`` is the column and ``y`` the row of the
        top-left corner (negative: counted from the right or bottom edge), ``width`` and
        ``height`` 0 mean "to the edge"; ``(0, -64, 0, 0)`` is the bottom 64 rows of any image.
        The segmentation sees them filled with the median of the rest of the image (so their
        contents move neither the contrast scaling nor the network), nothing in them is
        measured, and particles that touch them are excluded as ``ignored_region``, as
        particles cut by the image border are (:meth:`ignored_mask`).
    ignore_data_bar : bool
        Look for a data bar in each image (:func:`antema_fast._databar.find_data_bar`: a
        full-width strip of extreme values with text along the top or bottom edge) and, where
        one is found, ignore it as one more of :attr:`ignore_regions`, sized for that image.
        Off by default: ``analyze`` then only warns, with the region to give.
    ignore_scale_bar : bool
        Look for a scale bar burned into each image (:func:`antema_fast._scalebar.find_scale_bar`:
        a solid horizontal or vertical rectangle at the image's darkest or brightest value, away
        from the border) and, where one is found, ignore it and its label as one more of
        :attr:`ignore_regions`. Off by default: ``analyze`` then only warns, with the region.
    scale_bar_nm : float or None
        What the burned-in scale bars of exported pictures stand for, in nm (the number on
        their labels). ``analyze`` then finds each image's bar (as for
        :attr:`ignore_scale_bar`, which it implies) and, where the file has no pixel size, takes
        this divided by the bar's length in px (source ``"scale bar"``); where the file (or the
        caller) gives one, the bar checks it, with a warning when the two differ by more than
        :data:`antema_fast.pipeline.SCALE_BAR_TOLERANCE`. An image without a pixel size whose
        bar is not found fails with a message saying so. None: bars only warn.
    bootstrap_samples : int
        Resamples for the bootstrap 95 % confidence interval of the mean.
    seed : int
        Seed of the bootstrap, so that summaries are reproducible.

    Examples
    --------
    >>> s = Settings(separation="none")
    >>> s.convexity_threshold
    0.95
    >>> s.replace(min_diameter_nm=1.0).min_diameter_nm
    1.0
    """

    separation: Separation = "uecs"
    convexity_threshold: float = 0.95
    min_convexity: float = 0.5
    min_diameter_nm: float = 0.5
    max_holes: int = 10
    min_contrast_z: float = 0.0
    min_marker_area_px: int = 30
    circularity: Circularity = "corrected"
    backend: Backend = "auto"
    model: str | None = None
    threads: int | None = None
    tile_size: int = 2048
    segment_scale: float = 1.0
    flip_views: int = 1
    check_scale: bool = True
    auto_scale: bool = True
    min_measured_fraction: float = 0.6
    ignore_regions: tuple[tuple[int, int, int, int], ...] = ()
    ignore_data_bar: bool = False
    ignore_scale_bar: bool = False
    scale_bar_nm: float | None = None
    bootstrap_samples: int = 2000
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.separation not in _SEPARATIONS:
            raise ValueError(f"separation: expected one of {_SEPARATIONS}, got {self.separation!r}")
        if self.circularity not in _CIRCULARITIES:
            raise ValueError(
                f"circularity: expected one of {_CIRCULARITIES}, got {self.circularity!r}"
            )
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend: expected one of {_BACKENDS}, got {self.backend!r}")
        for name in ("convexity_threshold", "min_convexity", "min_measured_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name}: expected a number in [0, 1], got {v!r}")
        if self.min_convexity > self.convexity_threshold:
            raise ValueError(
                "min_convexity must not exceed convexity_threshold: got "
                f"{self.min_convexity} > {self.convexity_threshold}"
            )
        if not (
            isinstance(self.min_diameter_nm, (int, float))
            and math.isfinite(self.min_diameter_nm)
            and self.min_diameter_nm >= 0
        ):
            raise ValueError(
                f"min_diameter_nm: expected a finite number ≥ 0, got {self.min_diameter_nm!r}"
            )
        if not (
            isinstance(self.min_contrast_z, (int, float))
            and not isinstance(self.min_contrast_z, bool)
            and math.isfinite(self.min_contrast_z)
            and self.min_contrast_z >= 0
        ):
            raise ValueError(
                "min_contrast_z: expected a finite number ≥ 0 (0: off), got "
                f"{self.min_contrast_z!r}"
            )
        for name in ("max_holes", "min_marker_area_px", "tile_size", "bootstrap_samples"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name}: expected an integer ≥ 0, got {v!r}")
        if self.tile_size < 64:
            raise ValueError(f"tile_size: expected at least 64 px, got {self.tile_size}")
        check_segment_scale(self.segment_scale, "segment_scale")
        if self.flip_views not in (1, 2, 4) or isinstance(self.flip_views, bool):
            raise ValueError(f"flip_views: expected 1, 2 or 4, got {self.flip_views!r}")
        for name in ("check_scale", "auto_scale", "ignore_data_bar", "ignore_scale_bar"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        if self.scale_bar_nm is not None and not (
            isinstance(self.scale_bar_nm, (int, float))
            and not isinstance(self.scale_bar_nm, bool)
            and math.isfinite(self.scale_bar_nm)
            and self.scale_bar_nm > 0
        ):
            raise ValueError(
                f"scale_bar_nm: expected None or a positive number of nm, got {self.scale_bar_nm!r}"
            )
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads: expected None or an integer ≥ 1, got {self.threads!r}")
        # lists (from JSON or a caller) become tuples, so that Settings stay hashable
        object.__setattr__(self, "ignore_regions", _check_regions(self.ignore_regions))

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for manifests and spreadsheets (``extra`` included)."""
        return dataclasses.asdict(self)

    def ignored_mask(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """The pixels of an image of ``shape`` (rows, cols) in :attr:`ignore_regions`, or None
        when there are none.

        Raises
        ------
        ValueError
            If a region lies wholly outside the image, or the regions cover all of it.

        Examples
        --------
        >>> m = Settings(ignore_regions=((0, -2, 0, 0), (1, 0, 2, 1))).ignored_mask((4, 5))
        >>> m.astype(int)
        array([[0, 1, 1, 0, 0],
               [0, 0, 0, 0, 0],
               [1, 1, 1, 1, 1],
               [1, 1, 1, 1, 1]])
        """
        if not self.ignore_regions:
            return None
        rows, cols = int(shape[0]), int(shape[1])
        out = np.zeros((rows, cols), bool)
        for x, y, w, h in self.ignore_regions:
            c0 = x + cols if x < 0 else x
            r0 = y + rows if y < 0 else y
            c1 = cols if w == 0 else c0 + w
            r1 = rows if h == 0 else r0 + h
            c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, cols), min(r1, rows)
            if c0 >= c1 or r0 >= r1:
                raise ValueError(
                    f"ignore_regions: ({x}, {y}, {w}, {h}) lies outside the {cols}×{rows} px image"
                )
            out[r0:r1, c0:c1] = True
        if out.all():
            raise ValueError(f"ignore_regions cover the whole {cols}×{rows} px image")
        return out

    def min_area_px(self, pixel_size_nm: float) -> int:
        """Despeckle area in pixels: ``ceil(π/4 · (min_diameter_nm / s)²)``."""
        if not (pixel_size_nm > 0 and math.isfinite(pixel_size_nm)):
            raise ValueError(f"pixel_size_nm: expected a finite number > 0, got {pixel_size_nm!r}")
        return int(math.ceil(math.pi / 4.0 * (self.min_diameter_nm / pixel_size_nm) ** 2 - 1e-9))

    def min_marker_area(self, pixel_size_nm: float) -> int:
        """UECS minimum marker area: ``max(ceil(π/4 · (0.5 nm / s)²), min_marker_area_px)``."""
        if not (pixel_size_nm > 0 and math.isfinite(pixel_size_nm)):
            raise ValueError(f"pixel_size_nm: expected a finite number > 0, got {pixel_size_nm!r}")
        a = int(math.ceil(math.pi / 4.0 * (0.5 / pixel_size_nm) ** 2 - 1e-9))
        return max(a, self.min_marker_area_px)


def _check_regions(value: object) -> tuple[tuple[int, int, int, int], ...]:
    """``ignore_regions`` as a tuple of 4-tuples of ints, width and height ≥ 0."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(
            f"ignore_regions: expected a sequence of (x, y, width, height), got {value!r}"
        )
    out = []
    for r in value:  # type: ignore[attr-defined]
        t = tuple(r) if hasattr(r, "__iter__") and not isinstance(r, (str, bytes)) else (r,)
        if len(t) != 4 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in t
        ):
            raise ValueError(
                f"ignore_regions: expected (x, y, width, height) in whole pixels, got {r!r}"
            )
        x, y, w, h = (int(v) for v in t)
        if w < 0 or h < 0:
            raise ValueError(
                f"ignore_regions: width and height must be ≥ 0 (0: to the edge), got {r!r}"
            )
        out.append((x, y, w, h))
    return tuple(out)
