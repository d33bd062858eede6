"""Training data: synthetic tiles on the fly, real labelled micrographs, augmentation.

Everything here is NumPy/OpenCV; torch only sees the finished batches. Each training step draws
its batch from ``numpy.random.default_rng([seed, step])``, so a run resumed from a checkpoint
sees exactly the batches it would have seen without the interruption.
"""

from __future__ import annotations

import math
import multiprocessing
import re
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import synth
from .._preprocess import Preprocessing

_IMAGE_EXT = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

# Fixed split of the msaem set (20 BF-TEM images, image_i.png / label_i.png): the last five by
# number are held out for validation and never trained on.
MSAEM_VALIDATION = (15, 16, 17, 18, 19)


@dataclass
class LabelledImage:
    """A real micrograph with its binary particle mask."""

    name: str
    image: np.ndarray  # float32 (H, W), raw intensities
    mask: np.ndarray  # bool (H, W)


def _read_gray(path: Path) -> np.ndarray:
    import cv2

    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        a = np.asarray(tifffile.imread(path))
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"{path}: could not be read as an image")
        a = np.asarray(raw)
    if a.ndim == 3:
        if a.shape[2] in (3, 4):  # colour or RGBA: luminance of the colour channels
            a = a[..., :3].astype(np.float32).mean(axis=2)
        else:
            raise ValueError(f"{path}: expected a 2-D or RGB(A) image, got shape {a.shape}")
    if a.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D image, got shape {a.shape}")
    return a.astype(np.float32)


def _number(name: str) -> int:
    m = re.search(r"(\d+)", name)
    return int(m.group(1)) if m else -1


def load_pairs(folder: str | Path) -> list[LabelledImage]:
    """Image + mask pairs from a folder.

    Accepted layouts: ``images/`` + ``labels/`` (or ``masks/``) subfolders whose files pair up
    by the number in their names (``image_3.png`` ↔ ``label_3.png``) or by identical stems; or
    one folder with ``<stem>.<ext>`` and ``<stem>_mask.<ext>``. Masks: 0 = background, anything
    else = particle.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: expected a folder of image + mask pairs")
    out: list[LabelledImage] = []
    img_dir = root / "images"
    lab_dir = next((root / d for d in ("labels", "masks") if (root / d).is_dir()), None)
    if img_dir.is_dir() and lab_dir is not None:
        labs = {p.stem: p for p in lab_dir.iterdir() if p.suffix.lower() in _IMAGE_EXT}
        by_num = {_number(s): p for s, p in labs.items()}
        for p in sorted(img_dir.iterdir(), key=lambda q: (_number(q.stem), q.name)):
            if p.suffix.lower() not in _IMAGE_EXT:
                continue
            lp = labs.get(p.stem) or by_num.get(_number(p.stem))
            if lp is None:
                raise FileNotFoundError(f"{p}: no mask with the same stem or number in {lab_dir}")
            out.append(_pair(p, lp))
    else:
        for p in sorted(root.iterdir()):
            if p.suffix.lower() not in _IMAGE_EXT or p.stem.endswith("_mask"):
                continue
            lp = next((q for q in root.glob(p.stem + "_mask.*")), None)
            if lp is None:
                raise FileNotFoundError(f"{p}: expected a mask file {p.stem}_mask.<ext>")
            out.append(_pair(p, lp))
    if not out:
        raise FileNotFoundError(f"{root}: no image + mask pairs found")
    return out


def _pair(img_path: Path, mask_path: Path) -> LabelledImage:
    img = _read_gray(img_path)
    mask = _read_gray(mask_path) > 0
    if img.shape != mask.shape:
        raise ValueError(
            f"{mask_path}: mask shape {mask.shape} differs from image shape {img.shape}"
        )
    return LabelledImage(name=img_path.name, image=img, mask=mask)


def split_msaem(items: Sequence[LabelledImage]) -> tuple[list[LabelledImage], list[LabelledImage]]:
    """(train, validation) split of the msaem set by image number (:data:`MSAEM_VALIDATION`)."""
    train = [it for it in items if _number(it.name) not in MSAEM_VALIDATION]
    val = [it for it in items if _number(it.name) in MSAEM_VALIDATION]
    return train, val


# ----------------------------------------------------------------------------------------------
# Augmentation
# ----------------------------------------------------------------------------------------------


def _affine_crop(
    image: np.ndarray,
    mask: np.ndarray,
    size: int,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.5, 2.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Random scale + rotation + reflection + crop of a ``size``² tile (reflect borders)."""
    import cv2

    h, w = image.shape
    scale = math.exp(rng.uniform(math.log(scale_range[0]), math.log(scale_range[1])))
    angle = float(rng.uniform(0, 360))
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    # move the source point (cx, cy) to the tile centre
    m[:, 2] += np.array([size / 2 - cx, size / 2 - cy])
    img = cv2.warpAffine(
        image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    msk = (
        cv2.warpAffine(
            mask.astype(np.float32),
            m,
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )
        > 0.5
    )
    if rng.random() < 0.5:
        img, msk = img[:, ::-1], msk[:, ::-1]
    if rng.random() < 0.5:
        img, msk = img[::-1], msk[::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(msk)


def _degrade_raw(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Noise and blur on raw intensities (before preprocessing)."""
    import cv2

    x: np.ndarray = image.astype(np.float32)
    if rng.random() < 0.3 * strength:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.5, 2.0)))
    if rng.random() < 0.4 * strength:
        sd = float(x.std()) * float(rng.uniform(0.05, 0.5))
        x = x + rng.normal(0.0, sd, x.shape).astype(np.float32)
    return x


def _photometric(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness / contrast / gamma on the preprocessed [0, 1] input."""
    if rng.random() < 0.6:
        c = float(rng.uniform(0.7, 1.3))
        b = float(rng.uniform(-0.15, 0.15))
        x = (x - 0.5) * c + 0.5 + b
        np.clip(x, 0.0, 1.0, out=x)
    if rng.random() < 0.3:
        x = np.power(x, float(math.exp(rng.uniform(-0.4, 0.4)))).astype(np.float32)
    return x


def gap_weights(
    shape: tuple[int, int],
    masks: Sequence[tuple[int, int, np.ndarray]],
    w0: float,
    sigma_px: float,
) -> np.ndarray:
    """Per-pixel loss weights that stress the background between neighbouring particles.

    The weight map of Ronneberger, Fischer and Brox (U-Net, MICCAI 2015) for touching objects:
    a background pixel at distance ``d1`` from the nearest particle and ``d2`` from the
    nearest *other* particle gets ``1 + w0·exp(−(d1 + d2)² / (2σ²))``; particle pixels and
    background far from two particles get 1. The high weights sit in the narrow gaps and
    notches where two particles meet, the pixels that decide whether a mask keeps them apart
    (or keeps the neck that UECS separates them at) and that pixel IoU barely counts.

    Parameters
    ----------
    shape : (rows, cols)
    masks : sequence of (row0, col0, bitmap)
        Each particle's own full mask (overlaps not resolved), as a crop at ``(row0, col0)``.
    w0, sigma_px : float
        Peak extra weight and its width in pixels.

    Returns
    -------
    numpy.ndarray of float32, ``shape``.
    """
    import cv2

    h, w = shape
    out = np.ones((h, w), np.float32)
    if w0 <= 0 or len(masks) < 2:
        return out
    reach = int(math.ceil(3.0 * sigma_px))
    d1 = np.full((h, w), np.inf, np.float32)
    d2 = np.full((h, w), np.inf, np.float32)
    fg = np.zeros((h, w), bool)
    for r0, c0, bm in masks:
        bh, bw = bm.shape
        fg[r0 : r0 + bh, c0 : c0 + bw] |= bm
        wr0, wc0 = max(r0 - reach, 0), max(c0 - reach, 0)
        wr1, wc1 = min(r0 + bh + reach, h), min(c0 + bw + reach, w)
        win = np.ones((wr1 - wr0, wc1 - wc0), np.uint8)
        win[r0 - wr0 : r0 - wr0 + bh, c0 - wc0 : c0 - wc0 + bw][bm] = 0
        d = cv2.distanceTransform(win, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        a, b = d1[wr0:wr1, wc0:wc1], d2[wr0:wr1, wc0:wc1]
        np.minimum(b, np.maximum(a, d), out=b)
        np.minimum(a, d, out=a)
    s = d1 + d2
    near = ~fg & np.isfinite(s)
    out[near] += np.float32(w0) * np.exp(-(s[near] ** 2) / np.float32(2.0 * sigma_px**2))
    return out


def _component_masks(mask: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """The 8-connected components of a label mask as :func:`gap_weights` crops (a hand-made
    label cannot say where touching particles part, so only separate ones count)."""
    import cv2

    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out = []
    for i in range(1, n):
        c0, r0, bw, bh = (int(v) for v in stats[i, :4])
        out.append((r0, c0, lab[r0 : r0 + bh, c0 : c0 + bw] == i))
    return out


def _orient(
    img: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 right-angle orientations, the same for the image and the target (a mask,
    or the ``[2, H, W]`` mask and weights of :meth:`BatchSampler.target`)."""
    k = int(rng.integers(4))
    img, target = np.rot90(img, k), np.rot90(target, k, axes=(-2, -1))
    if rng.random() < 0.5:
        img, target = img[:, ::-1], target[..., ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(target)


@dataclass
class BatchSampler:
    """Draws training batches of preprocessed tiles and masks.

    Parameters
    ----------
    preprocessing : Preprocessing
        The recipe stored with the model.
    tile : int
        Tile side in pixels.
    real : list of LabelledImage
        Real labelled micrographs to mix in (may be empty).
    real_fraction : float
        Expected fraction of real tiles in a batch (0 when ``real`` is empty).
    seed : int
        Base seed; batch ``step`` uses ``default_rng([seed, step])``.
    regime_weights : sequence of float, optional
        Probabilities of :data:`antema_fast.synth.REGIMES` for synthetic tiles (normalised);
        None uses the ``"mixed"`` regime's own mix.
    synthetic_photometric : bool
        Brightness, contrast and gamma changes after preprocessing on synthetic tiles too (real
        tiles always get them). The percentile scaling of inference never hands the model such
        inputs, and the generator draws its own contrasts, so turning them off spends the
        training on the inputs the model will see.
    gap_weight, gap_sigma_px : float
        With ``gap_weight`` > 0, each target carries a second channel, the loss weight of
        every pixel (:func:`gap_weights` of the tile's particles: the true instances of a
        synthetic tile, the separate components of a real label), and the loss weighs its
        cross-entropy by it. 0 (default): targets have one channel.
    sparse_fraction : float
        Fraction of the synthetic tiles drawn as sparse fields (``synth.generate(sparse=True)``:
        a few particles or none on support whose texture the preprocessing stretches to full
        contrast). 0 (default) draws nothing for it, so batches are those of a run without it.
    """

    preprocessing: Preprocessing
    tile: int = 256
    real: Sequence[LabelledImage] = ()
    real_fraction: float = 0.3
    seed: int = 0
    augment_strength: float = 1.0
    regime_weights: Sequence[float] | None = None
    synthetic_photometric: bool = True
    gap_weight: float = 0.0
    gap_sigma_px: float = 3.0
    sparse_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparse_fraction <= 1.0:
            raise ValueError(f"sparse_fraction: expected in [0, 1], got {self.sparse_fraction!r}")
        if not (math.isfinite(self.gap_weight) and self.gap_weight >= 0):
            raise ValueError(f"gap_weight: expected a finite number ≥ 0, got {self.gap_weight!r}")
        if not (math.isfinite(self.gap_sigma_px) and self.gap_sigma_px > 0):
            raise ValueError(f"gap_sigma_px: expected a number > 0, got {self.gap_sigma_px!r}")
        if self.regime_weights is not None:
            w = np.asarray(self.regime_weights, dtype=np.float64)
            if w.shape != (len(synth.REGIMES),) or not np.all(w >= 0) or w.sum() <= 0:
                raise ValueError(
                    f"regime_weights: expected {len(synth.REGIMES)} non-negative weights for "
                    f"{synth.REGIMES} with a positive sum, got {list(self.regime_weights)!r}"
                )
            self._p: np.ndarray | None = w / w.sum()
        else:
            self._p = None

    def target(
        self, msk: np.ndarray, masks: Callable[[], Sequence[tuple[int, int, np.ndarray]]]
    ) -> np.ndarray:
        """The training target of a tile: its mask, or with ``gap_weight`` > 0 the ``[2, H, W]``
        stack of the mask and :func:`gap_weights` of the particles ``masks()`` gives."""
        if self.gap_weight <= 0:
            return msk
        wts = gap_weights(msk.shape, masks(), self.gap_weight, self.gap_sigma_px)
        return np.stack([msk.astype(np.float32), wts])

    def synthetic_tile(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)``: a preprocessed synthetic tile and its :meth:`target`."""
        regime = "mixed" if self._p is None else str(rng.choice(synth.REGIMES, p=self._p))
        sparse = self.sparse_fraction > 0 and bool(rng.random() < self.sparse_fraction)
        s = synth.generate(rng, (self.tile, self.tile), regime, sparse=sparse)
        y = self.target(s.semantic, lambda: [(i.bbox[0], i.bbox[1], i.mask) for i in s.instances])
        img, y = _orient(s.image, y, rng)
        x = self.preprocessing.apply(_degrade_raw(img, rng, 0.3 * self.augment_strength))
        return (_photometric(x, rng) if self.synthetic_photometric else x), y

    def real_tile(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`synthetic_tile` for a crop of a real labelled image."""
        it = self.real[int(rng.integers(len(self.real)))]
        img, msk = _affine_crop(it.image, it.mask, self.tile, rng)
        x = self.preprocessing.apply(_degrade_raw(img, rng, self.augment_strength))
        return _photometric(x, rng), self.target(msk, lambda: _component_masks(msk))

    def batch(self, step: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)``: float32 ``[size, 1, tile, tile]`` inputs and 0/1 targets (``[size, 2,
        tile, tile]``, targets and loss weights, with ``gap_weight`` > 0)."""
        rng = np.random.default_rng([self.seed, step])
        xs, ys = [], []
        for _ in range(size):
            use_real = len(self.real) > 0 and rng.random() < self.real_fraction
            x, y = self.real_tile(rng) if use_real else self.synthetic_tile(rng)
            xs.append(x)
            ys.append(y if y.ndim == 3 else y[None])
        x_arr = np.stack(xs)[:, None].astype(np.float32)
        y_arr = np.stack(ys).astype(np.float32)
        return x_arr, y_arr


_WORKER_SAMPLER: BatchSampler | None = None


def _init_worker(sampler: BatchSampler) -> None:
    import cv2

    global _WORKER_SAMPLER
    cv2.setNumThreads(1)  # one process per core: no thread pools inside
    _WORKER_SAMPLER = sampler


def _worker_batch(step: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    assert _WORKER_SAMPLER is not None
    return _WORKER_SAMPLER.batch(step, size)


class BatchPrefetcher:
    """:meth:`BatchSampler.batch` for the coming steps, drawn ahead by ``workers`` processes.

    A batch depends on ``(seed, step)`` alone, so training on these is exactly training on
    batches drawn in process (``TrainConfig.data_workers``); it only moves the drawing off the
    training process, for machines where the model's step is faster than drawing a batch (a
    GPU beside many cores). Batches are asked for by step; asking for another step than the
    next one (a resume) starts the look-ahead again from there.

    Parameters
    ----------
    sampler : BatchSampler
        Copied to each worker once (spawned processes: safe beside torch's threads).
    size : int
        Tiles per batch.
    workers : int
        Worker processes (≥ 1).
    depth : int, optional
        Batches kept in flight; default ``2 * workers``.
    """

    def __init__(
        self, sampler: BatchSampler, size: int, workers: int, depth: int | None = None
    ) -> None:
        if not (isinstance(workers, int) and workers >= 1):
            raise ValueError(f"workers: expected an integer ≥ 1, got {workers!r}")
        self.size = int(size)
        self.depth = int(depth) if depth else 2 * workers
        # spawned, not forked: safe beside torch's threads; a worker that dies raises
        # BrokenProcessPool here instead of hanging the run
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(sampler,),
        )
        self._queue: deque[tuple[int, Future[tuple[np.ndarray, np.ndarray]]]] = deque()
        self._next = 0

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``sampler.batch(step, size)``."""
        if not self._queue or self._queue[0][0] != step:
            for _, f in self._queue:
                f.cancel()
            self._queue.clear()
            self._next = step
        while len(self._queue) < self.depth:
            self._queue.append(
                (self._next, self._pool.submit(_worker_batch, self._next, self.size))
            )
            self._next += 1
        _, result = self._queue.popleft()
        return result.result()

    def close(self) -> None:
        """Stop the workers (batches in flight are dropped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def synthetic_set(
    n: int, tile: int, seed: int, regimes: Sequence[str] = synth.REGIMES
) -> list[tuple[str, synth.SynthImage]]:
    """A fixed, seeded synthetic test set: ``n`` images per regime (seeds disjoint from training
    because training seeds are ``[seed, step]`` sequences and these are ``[seed, 10**6, k]``)."""
    out = []
    for regime in regimes:
        for k in range(n):
            out.append((regime, synthetic_field(regime, k, tile, seed)))
    return out


def synthetic_field(regime: str, k: int, tile: int, seed: int) -> synth.SynthImage:
    """Field ``k`` of ``regime`` in :func:`synthetic_set` (any ``n``), drawn again by itself:
    how a field named in an evaluation report (``worst_fields``) is looked at."""
    if regime not in synth.REGIMES:
        raise ValueError(f"regime: expected one of {synth.REGIMES}, got {regime!r}")
    r_i = synth.REGIMES.index(regime)
    return synth.generate(np.random.default_rng([seed, 10**6, r_i, k]), (tile, tile), regime)
