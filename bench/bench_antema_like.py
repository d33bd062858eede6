"""ANTEMA's own case: ultrasmall gold on amorphous carbon in HRTEM, through ``antema analyze``.

The paper's showcase (Gumbiowski et al. 2023, Fig. 4) is gold particles of about 2 nm
(2.1 ± 0.7 nm) on an ultrathin carbon film, imaged by aberration-corrected HRTEM. Fields here:
1024² synthetic micrographs (``antema_fast.synth.generate``) in the ``hrtem`` and ``ultrasmall``
regimes at 0.02-0.1 nm/px, log-normal diameters with median 2 nm and σ 0.3, coverage 0.08, 15 %
of the particles overlapping another; ``--fields`` seeds per pixel size. Each analysis (the
default settings: network, scale check, UECS) is matched one-to-one (IoU ≥ 0.5) to the true
particles that do not touch the border (``antema_fast.train.evaluate.pipeline_field``).
Printed per regime and pixel size: true and reported particles, precision, recall, F1, the
pooled mean diameter (true → reported) and its bias, the SD ratio and the matched particles'
median error.

Run: ``nice -n 10 python bench/bench_antema_like.py [--fields 3] [--size 1024]``
(about 3 min on 2 cores).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from antema_fast import Settings, analyze, synth
from antema_fast.train.evaluate import pipeline_field, pipeline_summary

PIXEL_SIZES_NM = (0.02, 0.04, 0.07, 0.1)


def antema_field(regime: str, pixel_size_nm: float, k: int, size: int) -> synth.SynthImage:
    """Field ``k``: ultrasmall gold (median 2 nm, σ 0.3) at ``pixel_size_nm``."""
    rng = np.random.default_rng([1818, k, int(pixel_size_nm * 1000), len(regime)])
    pop = synth.Population(
        median_diameter_nm=2.0, sigma_log=0.3, coverage=0.08, overlap_fraction=0.15
    )
    return synth.generate(
        rng, (size, size), regime, pixel_size_nm=pixel_size_nm, population=pop, film_hole=False
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=3)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # the analysis warns about what it finds
    print(
        f"{'regime':10} {'nm/px':>6} {'true':>5} {'found':>5} {'prec':>5} {'recall':>6} "
        f"{'F1':>5} {'mean d (nm)':>13} {'bias':>7} {'SD ratio':>8} {'matched':>7}"
    )
    for regime in ("hrtem", "ultrasmall"):
        for px in PIXEL_SIZES_NM:
            recs = []
            for k in range(args.fields):
                s = antema_field(regime, px, k, args.size)
                res = analyze(s.image, pixel_size_nm=px, settings=Settings(threads=args.threads))
                recs.append(pipeline_field(res, s))
            m = pipeline_summary(recs)
            means = f"{m['mean_diameter_true_nm']:.2f} → {m['mean_diameter_measured_nm']:.2f}"
            print(
                f"{regime:10} {px:6.2f} {m['n_true']:5d} {m['n_measured']:5d} "
                f"{m['precision']:5.2f} {m['recall']:6.2f} {m['f1']:5.2f} {means:>13} "
                f"{m['mean_diameter_bias']:+7.1%} {m['sd_ratio']:8.2f} "
                f"{m['matched_diameter_bias_median']:+7.1%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
