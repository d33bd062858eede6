"""What real-file defects do to ``antema analyze``: the same synthetic fields analysed clean and
with one defect each, matched to their true particles.

Fields: the first ``--fields`` 768² test fields (seed 12345) of the bright-field TEM, HRTEM and
HAADF regimes (``antema_fast.train.data.synthetic_field``). Defects, each applied to the raw
counts before the analysis:

* ``hot pixels``: 1 pixel in 5,000 at 20 times the field's maximum (hot pixels, hits);
* ``dead columns``: three detector columns at 0;
* ``8-bit``: the 0.5-99.5 percentile range quantised to 256 levels (an exported picture);
* ``jpeg q75``: that 8-bit picture saved as JPEG at quality 75;
* ``vignette 30 %``: illumination falling by 30 % from the centre to the corners;
* ``tilt 30 %``: illumination rising by 30 % from the left edge to the right one;
* ``additive gradient``: a background ramp of half the 1-99 percentile range across the field.

Printed per regime and defect: true and reported particles, precision, recall, F1, the pooled
mean equivalent diameter's bias (``antema_fast.train.evaluate.pipeline_summary``), and F1's
change from the clean fields.

Run: ``nice -n 10 python bench/bench_robustness.py [--fields 4]`` (about 3 min on 2 cores).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

import cv2
import numpy as np
from antema_fast import Settings, analyze
from antema_fast.train.data import synthetic_field
from antema_fast.train.evaluate import pipeline_field, pipeline_summary

Defect = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _hot(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img.astype(np.float32)
    idx = rng.choice(out.size, out.size // 5000, replace=False)
    out.flat[idx] = float(img.max()) * 20.0
    return out


def _dead(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img.astype(np.float32)
    out[:, rng.choice(out.shape[1], 3, replace=False)] = 0.0
    return out


def _8bit(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo, hi = np.percentile(img, [0.5, 99.5])
    return np.clip((img - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", _8bit(img, rng), [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))


def _vignette(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w]
    r2 = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (h * h / 4)  # 2 at the corners
    return (img * (1.0 - 0.15 * r2)).astype(np.float32)


def _tilt(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = np.arange(img.shape[1], dtype=np.float32) / img.shape[1]
    return (img * (0.85 + 0.3 * x)[None, :]).astype(np.float32)


def _ramp(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99])
    x = np.arange(img.shape[1], dtype=np.float32) / img.shape[1]
    return (img + (hi - lo) * 0.5 * x[None, :]).astype(np.float32)


DEFECTS: dict[str, Defect] = {
    "clean": lambda img, rng: img,
    "hot pixels": _hot,
    "dead columns": _dead,
    "8-bit": _8bit,
    "jpeg q75": _jpeg,
    "vignette 30 %": _vignette,
    "tilt 30 %": _tilt,
    "additive gradient": _ramp,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # the analysis warns about what it finds
    settings = Settings(threads=args.threads)
    print("regime  defect              true  rep.  prec.  rec.    F1   mean d   dF1")
    for regime in ("tem", "hrtem", "haadf"):
        fields = [synthetic_field(regime, k, 768, 12345) for k in range(args.fields)]
        clean_f1 = None
        for name, defect in DEFECTS.items():
            recs = []
            for k, s in enumerate(fields):
                img = defect(s.image, np.random.default_rng([7, k]))
                res = analyze(img, pixel_size_nm=s.pixel_size_nm, settings=settings)
                recs.append(pipeline_field(res, s))
            p = pipeline_summary(recs)
            clean_f1 = p["f1"] if clean_f1 is None else clean_f1
            print(
                f"{regime:7} {name:18} {p['n_true']:5d} {p['n_measured']:5d} "
                f"{p['precision']:6.3f} {p['recall']:5.3f} {p['f1']:6.3f} "
                f"{p['mean_diameter_bias']:+7.3f} {p['f1'] - clean_f1:+6.3f}"
            )


if __name__ == "__main__":
    main()
