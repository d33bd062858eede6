"""Particles past the model's range (60-300 px wide): what ``antema analyze`` reports, with its
scale check and second pass (the default) and with the full-scale pass alone
(``check_scale=False``), against the true particles.

Fields: 1024² synthetic micrographs (``antema_fast.synth.generate``) of spheres, truncated
octahedra and cubes with a median width of W px (log-normal σ 0.15, coverage 0.25, a fifth of
them touching), in bright field at 0.5 nm/px, HAADF at 0.1 nm/px and HRTEM at 0.04 nm/px,
``--fields`` seeds per width and mode. Each analysis is matched one-to-one (IoU ≥ 0.5) to the
true particles that do not touch the border (``antema_fast.train.evaluate.pipeline_field``).
Printed per width and mode and pooled: true and reported particles, precision, recall, the
pooled mean equivalent diameter's bias, the matched particles' median error, how many fields
the second pass changed, and seconds per field.

Run: ``nice -n 10 python bench/bench_wide.py [--widths 60 90 120 160 220 300] [--fields 2]``
(about 1.5 min on 2 cores).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from antema_fast import Settings, analyze
from antema_fast.synth import Population, generate
from antema_fast.train.evaluate import pipeline_field, pipeline_summary

PIXEL_SIZE_NM = {"tem": 0.5, "haadf": 0.1, "hrtem": 0.04}


def field(regime: str, width_px: int, k: int):  # type: ignore[no-untyped-def]
    """Field ``k`` of particles about ``width_px`` wide in ``regime``."""
    px = PIXEL_SIZE_NM[regime]
    pop = Population(
        median_diameter_nm=width_px * px,
        sigma_log=0.15,
        coverage=0.25,
        overlap_fraction=0.2,
        shapes=("sphere", "truncated_octahedron", "cube"),
    )
    rng = np.random.default_rng([91, width_px, k])
    return generate(rng, (1024, 1024), regime, pixel_size_nm=px, population=pop, film_hole=False)


def _line(label: str, p: dict, merged: str, seconds: float) -> str:
    return (
        f"{label:22} {p['n_true']:5d} {p['n_measured']:5d} {p['precision']:6.2f} "
        f"{p['recall']:6.2f} {p['mean_diameter_bias']:+8.3f} "
        f"{p['matched_diameter_bias_median']:+8.3f} {merged:>7} {seconds:7.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[60, 90, 120, 160, 220, 300])
    ap.add_argument("--fields", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # the analysis warns about what it finds; counted here
    variants = {
        "default": Settings(threads=args.threads),
        "full scale only": Settings(threads=args.threads, check_scale=False),
    }
    pooled: dict[str, list[dict]] = {v: [] for v in variants}
    head = "                          true   rep.  prec.   rec.  mean d  matched  merged  s/field"
    for regime in PIXEL_SIZE_NM:
        print(f"{regime} at {PIXEL_SIZE_NM[regime]} nm/px\n{head}")
        for w in args.widths:
            fields = [field(regime, w, k) for k in range(args.fields)]
            for name, settings in variants.items():
                recs, merged, t0 = [], 0, time.perf_counter()
                for s in fields:
                    res = analyze(s.image, pixel_size_nm=s.pixel_size_nm, settings=settings)
                    check = res.provenance["scale_check"] or {}
                    merged += bool(check.get("merged_scale", {}).get("regions"))
                    recs.append(pipeline_field(res, s))
                seconds = (time.perf_counter() - t0) / len(fields)
                pooled[name] += recs
                print(
                    _line(
                        f"W {w:3d} {name}",
                        pipeline_summary(recs),
                        f"{merged}/{len(fields)}",
                        seconds,
                    )
                )
    print(f"pooled\n{head}")
    for name, recs in pooled.items():
        print(_line(name, pipeline_summary(recs), "", float("nan")))


if __name__ == "__main__":
    main()
