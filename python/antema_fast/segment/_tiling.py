"""Padding to the network's multiple, overlapping tiles with smooth blending, and batching.

Conventions
-----------
Images are padded at the bottom and right only, by reflection, so cropping back is ``[:h, :w]``.
Tiles start at multiples of the pad multiple, so that a network with pooling sees every pixel on
the same grid as it would untiled. Tile outputs are blended with weights that are zero in the
outer quarter of the overlap along every tile edge that lies inside the image (where the tile's
missing context distorts the output) and rise smoothly (raised cosine) to one across the middle
half of the overlap; the overlap is the actual one between the two neighbours, so each tile's
centre dominates. The blended map is the weighted sum divided by the sum of weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_OVERLAP = 256  # px of overlap (at least) between neighbouring tiles


def round_up(n: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is ≥ ``n``."""
    return -(-n // multiple) * multiple


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad a 2-D image at the bottom and right by reflection to multiples of ``multiple``.

    Examples
    --------
    >>> pad_to_multiple(np.zeros((333, 517), np.float32), 32).shape
    (352, 544)
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if multiple < 1:
        raise ValueError(f"multiple: expected an integer ≥ 1, got {multiple!r}")
    h, w = image.shape
    ph, pw = round_up(h, multiple) - h, round_up(w, multiple) - w
    if ph == 0 and pw == 0:
        return image
    return np.pad(image, ((0, ph), (0, pw)), mode="reflect")


def tile_starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with ≥ ``overlap`` overlap.

    ``length`` and ``tile`` must be multiples of ``multiple``; every start is one too. The fewest
    tiles that keep the overlap are spread evenly (so that overlaps are balanced), the first at
    0 and the last ending at ``length``.

    Examples
    --------
    >>> tile_starts(4096, 2048, 128, 32)
    [0, 1024, 2048]
    >>> tile_starts(1000, 1000, 128, 8)
    [0]
    """
    if length % multiple or tile % multiple:
        raise ValueError(f"length {length} and tile {tile}: expected multiples of {multiple}")
    if tile >= length:
        return [0]
    stride = ((tile - overlap) // multiple) * multiple
    if stride < multiple:
        raise ValueError(f"overlap {overlap}: expected well below the tile size {tile}")
    span = (length - tile) // multiple  # in units of the multiple
    n = -(-span * multiple // stride) + 1  # tiles needed so that no gap exceeds the stride
    return [(k * span // (n - 1)) * multiple for k in range(n)]


def _ramp(d: np.ndarray, overlap: int) -> np.ndarray:
    """Weight at distance ``d`` from an interior tile edge whose neighbour overlaps by ``overlap``.

    Zero for the outer quarter of the overlap, a raised cosine up to one across the middle half,
    one beyond. Two neighbours' ramps over their common overlap sum to one.
    """
    margin = overlap // 4
    ramp_len = max(overlap - 2 * margin, 1)
    t = np.clip((d - margin + 0.5) / ramp_len, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def _axis_weight(n: int, low_overlap: int, high_overlap: int) -> np.ndarray:
    """1-D blending weight of a tile of length n; an overlap of 0 means an image border."""
    d = np.arange(n, dtype=np.float32)
    w = np.ones(n, np.float32)
    if low_overlap > 0:
        w = np.minimum(w, _ramp(d, low_overlap))
    if high_overlap > 0:
        w = np.minimum(w, _ramp(d[::-1], high_overlap))
    return w


def _overlaps(starts: Sequence[int], tile: int, k: int) -> tuple[int, int]:
    """Actual overlap of tile k with its previous and next neighbour (0 at an image border)."""
    low = starts[k - 1] + tile - starts[k] if k > 0 else 0
    high = starts[k] + tile - starts[k + 1] if k + 1 < len(starts) else 0
    return low, high


@dataclass(frozen=True)
class TilePlan:
    """How a padded image of ``shape`` is cut into tiles of ``tile_shape``.

    Attributes
    ----------
    shape : (int, int)
        Padded image shape.
    tile_shape : (int, int)
        Shape of every tile (all equal, so tiles batch together).
    rows, cols : tuple of int
        Tile start offsets along each axis.
    overlap : int
        Requested overlap in px.
    """

    shape: tuple[int, int]
    tile_shape: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    overlap: int

    @property
    def origins(self) -> list[tuple[int, int]]:
        """(row, col) of every tile's top-left corner, row-major."""
        return [(r, c) for r in self.rows for c in self.cols]

    @property
    def n_tiles(self) -> int:
        return len(self.rows) * len(self.cols)

    def weight(self, r0: int, c0: int) -> np.ndarray:
        """Blending weight (tile_shape, float32) of the tile at (r0, c0).

        Along each axis the ramp at an interior edge spans the tile's actual overlap with that
        neighbour (at least the requested overlap), so the centre of every tile dominates.
        """
        th, tw = self.tile_shape
        wr = _axis_weight(th, *_overlaps(self.rows, th, self.rows.index(r0)))
        wc = _axis_weight(tw, *_overlaps(self.cols, tw, self.cols.index(c0)))
        return np.outer(wr, wc)

    def boundaries(self) -> tuple[list[int], list[int]]:
        """Rows and columns where a tile ends inside the image (where seams would appear)."""
        th, tw = self.tile_shape
        rows = sorted(
            {r + th for r in self.rows if r + th < self.shape[0]} | {r for r in self.rows if r > 0}
        )
        cols = sorted(
            {c + tw for c in self.cols if c + tw < self.shape[1]} | {c for c in self.cols if c > 0}
        )
        return rows, cols


def plan_tiles(
    shape: tuple[int, int], tile_size: int, multiple: int, overlap: int = DEFAULT_OVERLAP
) -> TilePlan:
    """Tile plan for a padded image; one tile when both sides fit in ``tile_size``.

    Examples
    --------
    >>> p = plan_tiles((4096, 4096), 2048, 32)
    >>> p.n_tiles, p.tile_shape
    (9, (2048, 2048))
    >>> plan_tiles((1024, 1024), 2048, 32).n_tiles
    1
    """
    h, w = shape
    if h % multiple or w % multiple:
        raise ValueError(f"shape {shape}: expected multiples of {multiple} (pad first)")
    tile = max((tile_size // multiple) * multiple, multiple)
    overlap = round_up(max(overlap, 0), multiple)
    th, tw = min(tile, h), min(tile, w)
    return TilePlan(
        shape=(h, w),
        tile_shape=(th, tw),
        rows=tuple(tile_starts(h, th, overlap, multiple)),
        cols=tuple(tile_starts(w, tw, overlap, multiple)),
        overlap=overlap,
    )


def batches(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)`` in consecutive groups of at most ``size``."""
    size = max(int(size), 1)
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


RunFn = Callable[[np.ndarray], np.ndarray]


FLIP_VIEWS = (1, 2, 4)
_FLIP_AXES: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def flip_views(run: RunFn, views: int) -> RunFn:
    """``run`` averaged over ``views`` mirrored copies of its ``[N, C, H, W]`` input.

    1: as is; 2: and mirrored left–right; 4: and up–down, and both (a 180° turn). Each output
    is mirrored back before the mean, so the result is aligned with the input. Shapes never
    change, so any engine profile and the tile grid stay valid. The padding at the bottom and
    right moves to the other side in a mirrored view; the pooling grid stays aligned because
    the padded size is a multiple of the network's.
    """
    if views not in FLIP_VIEWS:
        raise ValueError(f"flip views: expected one of {FLIP_VIEWS}, got {views!r}")
    if views == 1:
        return run

    def averaged(batch: np.ndarray) -> np.ndarray:
        total: np.ndarray | None = None
        for axes in _FLIP_AXES[:views]:
            x = np.ascontiguousarray(np.flip(batch, axes)) if axes else batch
            y = np.asarray(run(x), dtype=np.float32)
            y = np.flip(y, axes) if axes else y
            total = y.copy() if total is None else total + y
        assert total is not None
        return total / np.float32(views)

    return averaged


def run_tiled(x: np.ndarray, run: RunFn, plan: TilePlan, max_batch: int = 1) -> np.ndarray:
    """Run ``run`` ([N, 1, th, tw] float32 → same shape) over a padded 2-D image and blend.

    With a single tile this is ``run`` on the whole image, with no blending.
    """
    if x.shape != plan.shape:
        raise ValueError(f"image shape {x.shape}: expected the plan's {plan.shape}")
    th, tw = plan.tile_shape
    origins = plan.origins
    if len(origins) == 1:
        return run(x[None, None])[0, 0]
    out = np.zeros(plan.shape, np.float32)
    wsum = np.zeros(plan.shape, np.float32)
    for sl in batches(len(origins), max_batch):
        group = origins[sl]
        stack = np.stack([x[r : r + th, c : c + tw] for r, c in group])[:, None]
        probs = run(np.ascontiguousarray(stack))
        for (r, c), p in zip(group, probs[:, 0], strict=True):
            wgt = plan.weight(r, c)
            out[r : r + th, c : c + tw] += wgt * p
            wsum[r : r + th, c : c + tw] += wgt
    np.divide(out, wsum, out=out, where=wsum > 0)
    return out


def stack_same_shape(arrays: Sequence[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
    """Indices of ``arrays`` grouped by shape, in first-seen order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(tuple(a.shape), []).append(i)
    return groups
