"""Regenerate the example micrographs in this folder (``python examples/make_examples.py``).

The images are synthetic, made by the package's own generator (:mod:`antema_fast.synth`) with
fixed seeds, so that ``antema analyze examples/ -o results/`` runs on a fresh install without any
data of one's own. DM3 files are written with ``nionswift-io`` (in the ``test`` extra), TIFF files
with ``tifffile`` and ImageJ calibration (pixels per nm). ``truth.json`` holds each image's true
particle count and mean equivalent diameter, to compare the analysis with.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile
from antema_fast.synth import Imaging, Population, generate, to_uint16

HERE = Path(__file__).resolve().parent

# name, regime, seed, pixel size (nm/px), population
EXAMPLES = [
    (
        "gold_tem_sparse.dm3",
        "tem",
        11,
        0.25,
        Population(
            median_diameter_nm=6.0,
            sigma_log=0.2,
            coverage=0.12,
            overlap_fraction=0.1,
            shapes=("sphere", "truncated_octahedron"),
        ),
    ),
    (
        "gold_tem_crowded.dm3",
        "tem",
        12,
        0.25,
        Population(
            median_diameter_nm=6.0,
            sigma_log=0.25,
            coverage=0.25,
            overlap_fraction=0.45,
            shapes=("sphere", "truncated_octahedron", "octahedron"),
        ),
    ),
    (
        "gold_haadf.tif",
        "haadf",
        13,
        0.2,
        Population(
            median_diameter_nm=4.0,
            sigma_log=0.25,
            coverage=0.15,
            overlap_fraction=0.2,
            shapes=("sphere", "truncated_octahedron", "cube"),
        ),
    ),
    (
        "gold_hrtem.tif",
        "hrtem",
        14,
        0.08,
        Population(
            median_diameter_nm=3.0,
            sigma_log=0.15,
            coverage=0.15,
            overlap_fraction=0.15,
            shapes=("sphere", "truncated_octahedron"),
        ),
    ),
]

# Imaging conditions fixed where the generator's random draw would give an unrepresentative
# picture (carbon texture as dark as the particles): 40 % particle contrast, weak carbon texture,
# lattice fringes, slight defocus with a Fresnel fringe.
IMAGING = {
    "gold_hrtem.tif": Imaging(
        style="bf",
        mu_per_nm=0.17,
        carbon_amplitude=0.04,
        carbon_grain_nm=0.5,
        lattice_amplitude=0.25,
        blur_nm=0.08,
        fresnel_amplitude=0.5,
        fresnel_width_nm=0.4,
        dose_per_px=1000.0,
        gradient=0.1,
    ),
}
SHAPE = (512, 512)


def write_dm3(path: Path, image: np.ndarray, pixel_size_nm: float) -> None:
    """Write a 2-D image with a nm calibration as a DigitalMicrograph 3 file."""
    from nion.data import Calibration, DataAndMetadata
    from nionswift_plugin.DM_IO import dm3_image_utils

    cal = Calibration.Calibration(0.0, pixel_size_nm, "nm")
    xdata = DataAndMetadata.new_data_and_metadata(image, dimensional_calibrations=[cal, cal])
    with path.open("wb") as fh:
        dm3_image_utils.save_image(xdata, fh, 3)


def write_tiff(path: Path, image: np.ndarray, pixel_size_nm: float) -> None:
    """Write a 2-D image as an ImageJ TIFF calibrated in nm."""
    tifffile.imwrite(
        path,
        image,
        imagej=True,
        resolution=(1.0 / pixel_size_nm, 1.0 / pixel_size_nm),
        metadata={"unit": "nm"},
    )


def main() -> None:
    truth = {}
    for name, regime, seed, px, population in EXAMPLES:
        synth = generate(
            seed,
            SHAPE,
            regime,
            pixel_size_nm=px,
            population=population,
            imaging=IMAGING.get(name),
        )
        image = to_uint16(synth.image)
        path = HERE / name
        if path.suffix == ".dm3":
            write_dm3(path, image, px)
        else:
            write_tiff(path, image, px)
        d = synth.diameters_nm
        inside = np.array(
            [i.equivalent_diameter_nm for i in synth.instances if not i.touches_border]
        )
        truth[name] = {
            "regime": regime,
            "seed": seed,
            "shape": list(SHAPE),
            "pixel_size_nm": px,
            "particles": int(d.size),
            "mean_equivalent_diameter_nm": float(d.mean()) if d.size else None,
            "touching_fraction": float(synth.touching_fraction),
            "particles_inside": int(inside.size),
            "mean_equivalent_diameter_inside_nm": float(inside.mean()) if inside.size else None,
            "note": "particles: all, including those cut by the image border; *_inside: only "
            "those that do not touch it (what the analysis measures); overlapping particles "
            "count separately",
        }
        print(f"{name}: {d.size} particles, mean d {d.mean():.2f} nm, {path.stat().st_size} B")
    (HERE / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
