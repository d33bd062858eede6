"""Type stubs of the compiled core ``antema_fast._core`` (private; use the package API).

Every array argument must already be C-contiguous with the exact dtype shown: the bindings do
not convert (``noconvert``), so a forgotten conversion raises ``TypeError``.
"""

from typing import Any, Literal, TypedDict

import numpy as np
import numpy.typing as npt

__version__: str

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

class LabelStats(TypedDict):
    area: I64
    sum_row: I64
    sum_col: I64
    euler: I64
    row_min: I32
    col_min: I32
    row_max: I32
    col_max: I32
    first_row: I32
    first_col: I32
    touches_border: U8

class ParticleArrays(TypedDict):
    area: I64
    convex_area: I64
    holes: I64
    centroid_row: F64
    centroid_col: F64
    perimeter: F64
    convex_perimeter: F64
    feret_max: F64
    feret_max_angle: F64
    feret_min: F64
    feret_min_angle: F64
    row_min: I32
    col_min: I32
    row_max: I32
    col_max: I32
    touches_border: U8  # 0, 1, or 2 = unknown image size

class ConvexStats(TypedDict):
    perimeter: float
    convex_perimeter: float
    convexity: float
    area: int
    convex_area: int
    solidity: float

# (buffer, offsets (n+1,), shapes (n, 2) rows/cols, origins (n, 2) row0/col0)
Crops = tuple[U8, I64, I32, I32]

# labelling and mask utilities (bind_label.cpp)
def label(mask: U8, connectivity: Literal[4, 8]) -> tuple[I32, int, LabelStats]: ...
def remove_small_objects(mask: U8, min_px: int, connectivity: Literal[4, 8]) -> U8: ...
def fill_holes(mask: U8, smaller_than_px: int, connectivity: Literal[4, 8]) -> U8: ...
def clear_border(mask: U8, connectivity: Literal[4, 8]) -> U8: ...

# measurement (bind_measure.cpp)
def measure_mask(mask: U8, with_crops: bool = False) -> tuple[ParticleArrays, Crops | None]: ...
def particles_from_mask(mask: U8, connectivity: Literal[4, 8]) -> Crops: ...
def measure_crops(
    buffer: U8, offsets: I64, shapes: I32, origins: I32, image_rows: int, image_cols: int
) -> ParticleArrays: ...
def convex_stats(mask: U8) -> ConvexStats: ...
def perimeter(mask: U8) -> float: ...
def convex_image(mask: U8) -> U8: ...
def hulls(mask: U8) -> tuple[I64, I64]: ...
def contrast_z(
    image: npt.NDArray[Any],  # uint8, uint16, int16, int32, uint32, float32 or float64
    segmented: U8 | None,
    ignored: U8 | None,
    buffer: U8,
    offsets: I64,
    shapes: I32,
    origins: I32,
    gap: int,
    width: int,
    min_ring: int,
) -> F64: ...

# separation (bind_separate.cpp; its area documents the dict keys)
def postprocess_frame(
    mask: U8,
    method: str,
    threshold: float,
    min_convexity: float,
    max_holes: int,
    min_area: int,
    min_marker_area: int,
    watershed_h: float = 2.0,
) -> dict[str, Any]: ...
def uecs(area: U8, min_marker_area: int, threshold: float) -> dict[str, Any]: ...
def watershed(area: U8, h: float = 2.0) -> dict[str, Any]: ...
def morphology(mask: U8, op: str, element: str) -> U8: ...

# synthetic generator (bind_synth.cpp)
SYNTH_PARAM_COLUMNS: int
SYNTH_MAX_FACES: int
F32 = npt.NDArray[np.float32]

def synth_rasterize(
    params: F64,
    pixel_size_nm: float,
    thick: F32,
    best: F32,
    labels: I32,
    count: U8,
    lattice: F32,
    contrast_w: F32,
    fringes: bool,
    haadf_fringes: bool,
) -> dict[str, Any]: ...
def synth_form(
    thick: F32,
    contrast_w: F32,
    lattice: F32,
    tex: F32,
    haadf: bool,
    mu: float,
    gamma: float,
    background: float,
    carbon_amp: float,
    lattice_amp: float,
    film: F32 | None = None,
    vacuum: float = 1.0,
) -> F32: ...
def synth_expose(
    img: F32,
    gain_field: F32 | None,
    gradient: float,
    ga: float,
    gb: float,
    gc: float,
    gain0: float,
    gain1: float,
    dose_scale: float,
    seed: int,
    threads: int = 0,
) -> None: ...
def synth_place(
    diam: F64,
    groups: I32,
    h_nm: float,
    w_nm: float,
    margin_nm: float,
    seed: int,
    kinds: I32 | None = None,
) -> tuple[I32, F64, F64]: ...
