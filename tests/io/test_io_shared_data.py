"""Every file of ../shared/data/formats: shape, dtype and pixel size, or the right refusal.

The expected pixel sizes come from the files themselves (their tags, read independently with
h5py / tifffile / ncempy while writing these tests) and from ``shared/data/README.md``.
"""

from __future__ import annotations

import pathlib
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest
from antema_fast.io import CalibrationWarning, ReadError, iter_frames, read


@dataclass(frozen=True)
class Case:
    path: str
    shape: tuple[int, int]
    dtype: str
    x_nm: float
    y_nm: float
    frames: int = 1
    source: str = ""
    signal: str | None = None
    member: str | None = None
    anisotropic: bool = False


N = "formats/ncempy/"
R = "formats/rosettasciio/"

READABLE = [
    Case(
        N + "16_STOimage_1.ser",
        (1024, 1024),
        "uint16",
        0.010012704240,
        0.010012704240,
        source="file:SER",
    ),
    Case(
        N + "16_STOimage.emi",
        (1024, 1024),
        "uint16",
        0.010012704240,
        0.010012704240,
        source="file:SER",
    ),
    Case(
        N + "After HAADF 130mm_1.ser",
        (1024, 1024),
        "uint16",
        3.270361189,
        3.270361189,
        source="file:SER",
    ),
    Case(N + "After HAADF 130mm.emi", (1024, 1024), "uint16", 3.270361189, 3.270361189),
    Case(
        N + "Acquisition_18.emd",
        (1024, 1024),
        "uint16",
        0.0122465249,
        0.0122465249,
        source="file:EMD",
    ),
    Case(
        N + "Camera Ceta Imaging Micro.emd",
        (512, 512),
        "int16",
        3.13883705,
        3.13883705,
        source="file:Velox",
        signal="BM-Ceta",
    ),
    Case(
        N + "STEM HAADF Diffraction Micro.emd",
        (128, 128),
        "uint16",
        87.3707961,
        87.3707961,
        signal="HAADF",
    ),
    Case(
        N + "STEM HAADF-DF4-DF2-BF Diffraction Micro.emd",
        (128, 128),
        "uint16",
        87.3707961,
        87.3707961,
        signal="HAADF",
    ),
    Case(
        N + "dmTest_3D_int16_64,65,66.dm3",
        (65, 64),
        "int16",
        0.002,
        3.0,
        frames=66,
        anisotropic=True,
    ),
    Case(
        N + "dmTest_3D_int16_64,65,66.dm4",
        (65, 64),
        "int16",
        0.002,
        3.0,
        frames=66,
        anisotropic=True,
    ),
    Case(
        N + "dmTest_float32_nonSquare_diffPixelSize.dm3",
        (64, 128),
        "float32",
        1.0,
        0.2,
        anisotropic=True,
    ),
    Case(
        N + "dmTest_float32_nonSquare_diffPixelSize.dm4",
        (64, 128),
        "float32",
        1.0,
        0.2,
        anisotropic=True,
    ),
    Case(N + "temp.mrc", (128, 128), "float32", 0.2, 0.2, frames=3, source="file:MRC"),
    Case(
        "formats/particlespy/JEOL HAADF Image.dm4",
        (112, 112),
        "float32",
        1.2490136,
        1.2490136,
        source="file:DM",
    ),
    Case(
        "formats/particlespy/SiO2 HAADF Image.hspy",
        (128, 128),
        "float32",
        8.55244603,
        8.55244603,
        source="file:HyperSpy",
    ),
    Case(
        R + "digitalmicrograph/2D/multi_signal.dm3",
        (512, 512),
        "uint16",
        0.017751578,
        0.017751578,
        signal="HAADF",
    ),
    Case(
        R + "digitalmicrograph/2D/test_STEM_image.dm3", (68, 68), "uint32", 0.24853802, 0.24853802
    ),
    Case(R + "digitalmicrograph/Fei HAADF-DE_location.dm3", (4, 16), "uint16", 5.506073, 5.506073),
    Case(R + "digitalmicrograph/Fei HAADF-FR_location.dm3", (4, 16), "uint16", 5.506073, 5.506073),
    Case(R + "digitalmicrograph/Fei HAADF-MX_location.dm3", (4, 16), "uint16", 5.506073, 5.506073),
    Case(R + "digitalmicrograph/Fei HAADF-UK_location.dm3", (4, 16), "uint16", 5.506073, 5.506073),
    Case(
        R + "digitalmicrograph/test_stackbuilder_imagestack.dm3",
        (2, 16),
        "uint32",
        59.982903,
        59.982903,
        frames=3,
    ),
    Case(
        R + "emd/fei_example_tem_stack.emd", (3, 3), "int16", 0.0081728832, 0.0081728832, frames=2
    ),
    Case(
        R + "emd/velox_emd_version11.zip",
        (16, 16),
        "uint16",
        3.59924926,
        3.59924926,
        frames=2,
        signal="HAADF",
        member="Test SI 16x16 215 kx.emd",
    ),
    Case(
        R + "emd/velox_emd_version11.zip",
        (16, 16),
        "uint16",
        3.59924926,
        3.59924926,
        signal="HAADF",
        member="Test SI 16x16 ReducedData 215 kx.emd",
    ),
    Case(R + "mrc/HAADFscan.mrc", (16, 16), "uint16", 5.679131, 5.679131),
    Case(R + "tia/new/128x128-TEM_search_1.ser", (128, 128), "int32", 5.261214205, 5.261214205),
    Case(R + "tia/old/64x64_TEM_images_acquire_1.ser", (64, 64), "float32", 6.2818336, 6.2818336),
    Case(
        R + "tia/old/64x64x5_TEM_preview.emi", (64, 64), "float32", 6.2818336, 6.2818336, frames=5
    ),
    Case(
        R + "tiff/TVIPS_bin4.zip",
        (1024, 1024),
        "uint8",
        1.42080367,
        1.42080367,
        source="file:TVIPS",
    ),
    Case(
        R + "tiff/olympus_SIS.tif",
        (101, 112),
        "uint16",
        0.0239279178,
        0.0239279178,
        source="file:OlympusSIS",
        signal="series1",
    ),
    Case(R + "tiff/test_dm_image_um_unit.dm3", (68, 68), "int32", 168.674693, 168.674693),
    Case(
        R + "tiff/test_loading_image_saved_with_DM.tif",
        (68, 68),
        "int32",
        168.674693,
        168.674693,
        source="file:Gatan",
    ),
    Case(
        R + "tiff/test_loading_image_saved_with_DM_stack.tif",
        (68, 68),
        "float32",
        168.674007,
        1686.74004,
        frames=2,
        anisotropic=True,
    ),
    Case(
        R + "tiff/test_loading_image_saved_with_imageJ.tif",
        (68, 68),
        "float32",
        168.674707,
        168.674707,
        source="file:ImageJ",
    ),
    Case(
        R + "tiff/test_loading_image_saved_with_imageJ_stack.tif",
        (68, 68),
        "float32",
        168.674707,
        168.674707,
        frames=2,
    ),
    Case(  # 471 rows in the file: the 29-row data bar below the image is cut off
        R + "tiff/tiff_FEI_Helios.zip",
        (442, 512),
        "uint16",
        3372.4,
        3372.4,
        source="file:FEI",
        member="FEI-Helios-Ebeam-16bits.tif",
    ),
    Case(
        R + "tiff/tiff_FEI_Helios.zip",
        (442, 512),
        "uint8",
        3372.4,
        3372.4,
        member="FEI-Helios-Ebeam-8bits.tif",
    ),
    Case(
        R + "tiff/tiff_Zeiss_SEM.zip",
        (768, 1024),
        "uint8",
        2615.0,
        2615.0,
        source="file:CZ_SEM ap_image_pixel_size",
        member="test_tiff_Zeiss_SEM_1k.tif",
    ),
    Case(
        R + "tiff/tiff_Zeiss_SEM.zip",
        (384, 512),
        "uint8",
        5.825,
        5.825,
        source="file:CZ_SEM ap_pixel_size",
        member="test_tiff_Zeiss_SEM_512pix.tif",
    ),
    Case(
        R + "tiff/tiff_Zeiss_SEM.zip",
        (1536, 2048),
        "uint8",
        12.33,
        12.33,
        frames=2,
        member="ZEISS_SEM_multipage.tif",
    ),
    Case(
        "formats/temul/example_Au_nanoparticle.emd",
        (2048, 2048),
        "uint16",
        0.0074984015,
        0.0074984015,
        source="file:Velox",
        signal="HAADF",
    ),
]

REFUSED = [
    (N + "08_carbon.dm3", None, "1-D spectrum"),
    (N + "Camera Ceta Diffraction Micro.emd", None, r"diffraction pattern.*1/m"),
    (N + "emd_type1_stringDims.h5", None, r"4-D dataset"),
    (N + "L2083-K-4-1_about_dataset.txt", None, "not a recognised microscope file"),
    (R + "digitalmicrograph/2D/test_diffraction_pattern.dm3", None, r"diffraction pattern.*1/nm"),
    (R + "hspy/example2_v3.1.hspy", None, r"diffraction pattern.*1/nm"),
    (R + "emd/velox_emd_version11.zip", None, r"zip archive with 2 files"),
]

UNCALIBRATED = [
    (R + "digitalmicrograph/2D/test-1.dm3", None, (2, 2), "carry no length unit"),
    (R + "digitalmicrograph/2D/test-1.dm4", None, (2, 2), "carry no length unit"),
    (R + "emd/example_image.emd", None, (3, 3), "carry no length unit"),
    (R + "tiff/JEOL-SightX-TEM-mag-dummy.tif.gz", None, (556, 556), "93 pixels per inch"),
    (R + "tiff/test_loading_image_saved_with_imageJ_no_scale.tif", None, (68, 68), "no unit"),
    (R + "tiff/tiff_FEI_Helios.zip", "FEI-Helios-navcam.tif", (512, 768), "96 pixels per inch"),
    (
        R + "tiff/tiff_FEI_Helios.zip",
        "FEI-Helios-navcam-with-no-IRBeam.tif",
        (512, 768),
        "pixels per inch",
    ),
    (
        R + "tiff/tiff_FEI_Helios.zip",
        "FEI-Helios-navcam-with-no-IRBeam-bad-floats.tif",
        (512, 768),
        "pixels per inch",
    ),
]


def _file(shared_data: pathlib.Path, rel: str) -> pathlib.Path:
    f = shared_data / rel
    if not f.exists():
        pytest.skip(f"{f} is absent from the shared data")
    return f


def _id(case: Case) -> str:
    return case.path.split("/")[-1] + (f"[{case.member}]" if case.member else "")


@pytest.mark.parametrize("case", READABLE, ids=_id)
def test_readable(shared_data: pathlib.Path, case: Case) -> None:
    f = _file(shared_data, case.path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = read(f, member=case.member)
    calibration_warnings = [w for w in caught if issubclass(w.category, CalibrationWarning)]
    assert [w for w in caught if not issubclass(w.category, CalibrationWarning)] == []
    assert bool(calibration_warnings) == case.anisotropic
    assert bool(m.warnings) == case.anisotropic
    assert m.data.shape == case.shape
    assert m.data.dtype == np.dtype(case.dtype)
    assert m.pixel_size_x_nm == pytest.approx(case.x_nm, rel=1e-5)
    assert m.pixel_size_y_nm == pytest.approx(case.y_nm, rel=1e-5)
    assert m.pixel_size_nm == pytest.approx(np.sqrt(case.x_nm * case.y_nm), rel=1e-5)
    assert m.pixel_size_source.startswith(case.source or "file:")
    assert m.frame_count == case.frames
    if case.signal is not None:
        assert m.signal == case.signal
    assert np.isfinite(m.data).all()


STACKS = [c for c in READABLE if c.frames > 1]


def _reference_stack(f: pathlib.Path) -> np.ndarray:
    """The whole stack read by the format's own library, as (frames, rows, cols)."""
    suffix = f.suffix.lower()
    if suffix in (".dm3", ".dm4"):
        from ncempy.io import dm

        return np.asarray(dm.dmReader(f)["data"])
    if suffix == ".mrc":
        from ncempy.io import mrc

        return np.asarray(mrc.mrcReader(f)["data"])
    if suffix in (".ser", ".emi"):
        from ncempy.io import ser

        serfile = f if suffix == ".ser" else f.with_name(f.stem + "_1.ser")
        with ser.fileSER(serfile) as s:
            return np.stack([s.getDataset(i)[0] for i in range(s.head["ValidNumberElements"])])
    if suffix == ".emd":
        import h5py

        with h5py.File(f, "r") as h:
            for g in h["Data/Image"].values():
                if np.asarray(g["Data"]).shape[2] > 1:
                    return np.moveaxis(np.asarray(g["Data"]), 2, 0)
    import tifffile

    return np.asarray(tifffile.imread(f))


@pytest.mark.parametrize("case", STACKS, ids=_id)
def test_stacks_frame_by_frame(
    shared_data: pathlib.Path, tmp_path: pathlib.Path, case: Case
) -> None:
    f = _file(shared_data, case.path)
    if case.member is not None:
        with zipfile.ZipFile(f) as z:
            f = pathlib.Path(z.extract(case.member, tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        with iter_frames(f) as it:
            assert len(it) == case.frames
            frames = list(it)
        last = read(f, frame=case.frames - 1)
    assert [fr.frame_index for fr in frames] == list(range(case.frames))
    assert all(fr.data.shape == case.shape for fr in frames)
    np.testing.assert_array_equal(last.data, frames[-1].data)
    reference = _reference_stack(f)
    assert reference.shape == (case.frames, *case.shape)
    np.testing.assert_array_equal(np.stack([fr.data for fr in frames]), reference)


@pytest.mark.parametrize(("rel", "member", "message"), REFUSED, ids=lambda v: str(v)[-40:])
def test_refused(shared_data: pathlib.Path, rel: str, member: str | None, message: str) -> None:
    f = _file(shared_data, rel)
    with pytest.raises(ReadError, match=message) as info:
        read(f, member=member, pixel_size_nm=1.0)
    assert f.name in str(info.value)


@pytest.mark.parametrize(
    ("rel", "member", "shape", "why"), UNCALIBRATED, ids=lambda v: str(v)[-40:]
)
def test_uncalibrated_needs_pixel_size(
    shared_data: pathlib.Path, rel: str, member: str | None, shape: tuple[int, int], why: str
) -> None:
    f = _file(shared_data, rel)
    with pytest.raises(ReadError, match=f"no pixel size.*{why}.*pixel_size_nm=") as info:
        read(f, member=member)
    assert f.name in str(info.value)
    m = read(f, member=member, pixel_size_nm=0.5)
    assert m.data.shape == shape
    assert (m.pixel_size_nm, m.pixel_size_source) == (0.5, "user")


def test_multi_signal_dm3_names_and_plot(shared_data: pathlib.Path) -> None:
    f = _file(shared_data, R + "digitalmicrograph/2D/multi_signal.dm3")
    m = read(f)
    assert m.metadata["signals"] == ["HAADF", "Plot"]
    assert m.metadata["voltage_kV"] == pytest.approx(300.0)
    assert m.metadata["instrument"] == "FEI Tecnai Remote"
    assert m.metadata["signal_choice"].startswith("read 'HAADF' (the first measurable image)")
    assert "'Plot' is a 1-D signal" in m.metadata["signal_choice"]
    with pytest.raises(ReadError, match=r"signal 'Plot' is a 1-D signal"):
        read(f, signal="Plot")


def test_velox_four_detectors(shared_data: pathlib.Path) -> None:
    f = _file(shared_data, N + "STEM HAADF-DF4-DF2-BF Diffraction Micro.emd")
    m = read(f)
    assert sorted(m.metadata["signals"]) == ["BF", "DF2", "DF4", "HAADF"]
    bf = read(f, signal="BF")
    assert bf.signal == "BF" and not np.array_equal(bf.data, m.data)


def test_velox_eds_maps_come_after_haadf(shared_data: pathlib.Path) -> None:
    f = _file(shared_data, R + "emd/velox_emd_version11.zip")
    m = read(f, member="Test SI 16x16 215 kx.emd")
    assert m.metadata["signals"][0] == "HAADF"
    assert all(s.startswith("SuperX") for s in m.metadata["signals"][1:])


def test_dm_locales_give_the_same_acquisition_date(shared_data: pathlib.Path) -> None:
    times = []
    for loc in ("DE", "FR", "MX", "UK"):
        f = _file(shared_data, R + f"digitalmicrograph/Fei HAADF-{loc}_location.dm3")
        times.append(read(f).metadata["acquisition_time"])
    assert all(t.startswith("2016-08-27T19:5") for t in times), times


def test_dm_stack_tiff_timestamps(shared_data: pathlib.Path) -> None:
    f = _file(shared_data, R + "tiff/test_loading_image_saved_with_DM_stack.tif")
    with pytest.warns(CalibrationWarning, match="differ by 900 %"):
        frames = list(iter_frames(f))
    assert [fr.timestamp_s for fr in frames] == pytest.approx([0.0, 2.5])


def test_ser_series_timestamps(shared_data: pathlib.Path) -> None:
    f = _file(shared_data, R + "tia/old/64x64x5_TEM_preview_1.ser")
    stamps = [fr.timestamp_s for fr in iter_frames(f)]
    assert len(stamps) == 5
    assert all(s is not None and s > 1.4e9 for s in stamps)
    assert stamps == sorted(stamps)


def test_metadata_of_real_files(shared_data: pathlib.Path) -> None:
    jeol = read(_file(shared_data, "formats/particlespy/JEOL HAADF Image.dm4"))
    assert jeol.metadata["voltage_kV"] == pytest.approx(80.0)
    assert jeol.metadata["magnification"] == pytest.approx(250000.0)
    ser = read(_file(shared_data, N + "16_STOimage.emi"))
    assert ser.metadata["voltage_kV"] == pytest.approx(80.0)
    assert ser.metadata["magnification"] == pytest.approx(13.5e6)
    zeiss = read(
        _file(shared_data, R + "tiff/tiff_Zeiss_SEM.zip"), member="test_tiff_Zeiss_SEM_1k.tif"
    )
    assert zeiss.metadata["voltage_kV"] == pytest.approx(25.0)
    assert zeiss.metadata["detector"] == "HE-SE2"
    velox = read(_file(shared_data, "formats/temul/example_Au_nanoparticle.emd"))
    assert velox.metadata["voltage_kV"] == pytest.approx(300.0)
    assert velox.metadata["acquisition_time"].startswith("2019-08-13")
