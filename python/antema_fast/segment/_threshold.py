"""Classical baseline: Gaussian blur, then an Otsu or adaptive threshold, polarity detected.

No model. This is the baseline the paper says fails at low contrast; ``bench/bench_segment.py``
measures by how much.

Polarity rule
-------------
Particles are dark on a bright background in bright field (BF-TEM) and bright on a dark one in
HAADF-STEM. After the global Otsu split of the blurred image, the *background* is taken to be the
class that holds more of the image border (a ring 5 % of the shorter side wide): particles rarely
line the whole border, while background almost always does. When the border is split nearly
evenly (between 40 % and 60 %), the class holding more of the whole image is the background
instead. Particles are the other class.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Polarity = Literal["auto", "dark", "bright"]
Method = Literal["otsu", "adaptive"]


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of an array (maximum between-class variance over a histogram).

    Returns the upper edge of the last bin of the lower class; pixels ``> t`` are the upper class.

    Examples
    --------
    >>> x = np.r_[np.zeros(50), np.ones(50)]
    >>> 0.0 <= otsu_threshold(x) < 1.0
    True
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("otsu_threshold: expected finite values, got none")
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    hist = hist.astype(np.float64)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = m0 / np.maximum(w0, 1e-300)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1e-300)
    between = w0 * w1 * (mean0 - mean1) ** 2
    between[w1 == 0] = -1.0
    k = int(np.argmax(between))
    return float(edges[k + 1])


def detect_polarity(blurred: np.ndarray, upper: np.ndarray) -> Literal["dark", "bright"]:
    """Whether particles are the dark or the bright class (see the module notes).

    Parameters
    ----------
    blurred : ndarray
        The blurred image (only its shape is used).
    upper : ndarray of bool
        Pixels above the global threshold.
    """
    h, w = blurred.shape
    ring = max(1, int(round(0.05 * min(h, w))))
    border = np.ones((h, w), bool)
    border[ring : h - ring, ring : w - ring] = False
    upper_border = float(upper[border].mean())
    if 0.4 <= upper_border <= 0.6:
        background_is_upper = float(upper.mean()) >= 0.5
    else:
        background_is_upper = upper_border > 0.5
    return "dark" if background_is_upper else "bright"


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    if sigma <= 0:
        return x
    return cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def threshold_segment(
    image: np.ndarray,
    *,
    method: Method = "otsu",
    sigma_px: float = 2.0,
    polarity: Polarity = "auto",
    block_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, Literal["dark", "bright"]]:
    """Segment particles by a threshold.

    Parameters
    ----------
    image : ndarray, 2-D
        The micrograph (any real dtype).
    method : {"otsu", "adaptive"}
        ``"otsu"``: one global threshold. ``"adaptive"``: a pixel is particle when it differs from
        its local Gaussian-weighted mean (σ = ``block_size``/6), in the particle direction, by
        more than a quarter of the difference between the two Otsu class means.
    sigma_px : float
        σ of the Gaussian blur in pixels before thresholding.
    polarity : {"auto", "dark", "bright"}
        Whether particles are darker or brighter than background; ``"auto"`` detects it.
    block_size : int or None
        Neighbourhood of the adaptive method in px (default: ⅛ of the shorter side, ≥ 31).

    Returns
    -------
    mask : ndarray of bool
        Particle pixels.
    score : ndarray of float32 in [0, 1]
        Blurred intensity scaled min–max with particles bright (not a calibrated probability).
    polarity : {"dark", "bright"}
        The polarity used.

    Examples
    --------
    >>> img = np.full((64, 64), 200.0); img[20:40, 20:40] = 50.0
    >>> mask, score, pol = threshold_segment(img)
    >>> pol, int(mask.sum()) > 300, bool(mask[0, 0])
    ('dark', True, False)
    """
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {a.shape}")
    if method not in ("otsu", "adaptive"):
        raise ValueError(f"method: expected 'otsu' or 'adaptive', got {method!r}")
    if polarity not in ("auto", "dark", "bright"):
        raise ValueError(f"polarity: expected 'auto', 'dark' or 'bright', got {polarity!r}")
    x = _blur(a.astype(np.float32), float(sigma_px))
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        pol: Literal["dark", "bright"] = "dark" if polarity == "auto" else polarity
        return np.zeros(a.shape, bool), np.zeros(a.shape, np.float32), pol
    x = (x - lo) / (hi - lo)
    t = otsu_threshold(x)
    upper = x > t
    pol = detect_polarity(x, upper) if polarity == "auto" else polarity
    score = (1.0 - x) if pol == "dark" else x
    score = score.astype(np.float32)
    if method == "otsu":
        mask = ~upper if pol == "dark" else upper
        return mask, score, pol
    if block_size is None:
        block_size = max(31, min(a.shape) // 8)
    mean_upper = float(x[upper].mean()) if upper.any() else t
    mean_lower = float(x[~upper].mean()) if (~upper).any() else t
    offset = 0.5 * (mean_upper - mean_lower) * 0.5
    local = _blur(score, block_size / 6.0)
    mask = score > local + offset
    return mask, score, pol
