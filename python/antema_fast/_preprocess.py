"""Preprocessing of micrographs before the segmentation network, defined once.

The recipe travels *with the model*: training writes :meth:`Preprocessing.to_json` into the ONNX
metadata under :data:`META_PREPROCESSING`, and inference reads it back with
:meth:`Preprocessing.from_json`. Nothing else in the package hard-codes these numbers.

ANTEMA's recipe (the default here): Gaussian blur σ = 2 px, min–max scale to [0, 1], then uint8.
The network input is that uint8 image divided by 255, as float32.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

# ONNX metadata keys written by training and read by inference.
META_PREFIX = "antema."
META_NAME = "antema.name"
META_VERSION = "antema.version"
META_PREPROCESSING = "antema.preprocessing"
META_PAD_MULTIPLE = "antema.pad_multiple"
META_PIXEL_SIZE_NM = "antema.pixel_size_nm"  # "null" when trained across pixel sizes
META_METRICS = "antema.metrics"
META_TRAINING = "antema.training"
META_THRESHOLD = "antema.threshold"  # probability above which a pixel is particle
# Tensor names of the shipped graphs: input [N, 1, H, W] float32, output [N, 1, H, W] float32
# particle probability in [0, 1].
INPUT_NAME = "image"
OUTPUT_NAME = "probability"


@dataclass(frozen=True)
class Preprocessing:
    """How a micrograph is turned into the network's input.

    Parameters
    ----------
    gaussian_sigma_px : float
        σ of the Gaussian blur in pixels (0 disables it).
    low_percentile, high_percentile : float
        Intensities at these percentiles map to 0 and 1 (0 and 100: plain min–max, ANTEMA's).
    quantize_uint8 : bool
        Round to 256 levels after scaling, as ANTEMA's uint8 conversion does.

    Examples
    --------
    >>> p = Preprocessing()
    >>> x = p.apply(np.arange(16, dtype=np.uint16).reshape(4, 4))
    >>> x.dtype, float(x.min()) >= 0.0, float(x.max()) <= 1.0
    (dtype('float32'), True, True)
    >>> Preprocessing.from_json(p.to_json()) == p
    True
    """

    gaussian_sigma_px: float = 2.0
    low_percentile: float = 0.0
    high_percentile: float = 100.0
    quantize_uint8: bool = True

    def __post_init__(self) -> None:
        if not (self.gaussian_sigma_px >= 0):
            raise ValueError(f"gaussian_sigma_px: expected ≥ 0, got {self.gaussian_sigma_px!r}")
        if not (0.0 <= self.low_percentile < self.high_percentile <= 100.0):
            raise ValueError(
                "percentiles: expected 0 ≤ low < high ≤ 100, got "
                f"{self.low_percentile!r}, {self.high_percentile!r}"
            )

    def to_json(self) -> str:
        return json.dumps({"recipe": "blur-scale-uint8", **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        d = json.loads(text)
        recipe = d.pop("recipe", "blur-scale-uint8")
        if recipe != "blur-scale-uint8":
            raise ValueError(f"unknown preprocessing recipe {recipe!r} in model metadata")
        return cls(**d)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Blur, scale to [0, 1] and (optionally) quantise one 2-D image; float32 result."""
        import cv2

        a = np.asarray(image)
        if a.ndim != 2:
            raise ValueError(f"expected a 2-D image, got shape {a.shape}")
        x = a.astype(np.float32, copy=True)
        if self.gaussian_sigma_px > 0:
            x = np.asarray(
                cv2.GaussianBlur(
                    x,
                    (0, 0),
                    sigmaX=self.gaussian_sigma_px,
                    sigmaY=self.gaussian_sigma_px,
                    borderType=cv2.BORDER_REFLECT,
                ),
                dtype=np.float32,
            )
        if self.low_percentile == 0.0 and self.high_percentile == 100.0:
            lo, hi = float(x.min()), float(x.max())
        else:
            lo, hi = (
                float(v) for v in np.percentile(x, [self.low_percentile, self.high_percentile])
            )
        if not hi > lo:
            return np.zeros(x.shape, np.float32)
        x = (x - lo) * np.float32(1.0 / (hi - lo))
        np.clip(x, 0.0, 1.0, out=x)
        if self.quantize_uint8:
            x = (np.rint(x * 255.0) * np.float32(1.0 / 255.0)).astype(np.float32, copy=False)
        return x.astype(np.float32, copy=False)
