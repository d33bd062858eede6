"""TIFF files through tifffile, with the calibration of every common microscope vendor.

The pixel size is taken from the first of these that the file has (see ``docs/reading.md``):

1. FEI / Thermo Fisher SEM/FIB metadata (``FEI_HELIOS`` / ``FEI_SFEG`` tags):
   ``Scan.PixelWidth`` / ``PixelHeight`` in metres (``EScan`` / ``IScan`` as fallback).
2. Zeiss SEM (``CZ_SEM`` tag): ``ap_image_pixel_size`` with its unit.
3. Gatan DigitalMicrograph export: private tags 65009/65010 (x/y scale) with units 65003/65004.
4. OME-XML: ``Pixels`` ``PhysicalSizeX/Y`` with ``PhysicalSizeX/YUnit`` (default µm).
5. ImageJ: ``unit=`` in the description with the X/YResolution tags (pixels per unit).
6. TVIPS (tag 37706): ``PixelSizeX/Y`` in nm.
7. Olympus SIS (tag 33560): ``pixelsizex/y`` in metres.
8. Plain resolution tags with ResolutionUnit centimetre or inch, only when they give pixels
   smaller than 10 µm: larger ones are a display/print density (72 dpi, 96 dpi), not a
   calibration.
"""

from __future__ import annotations

import datetime
import pathlib
import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from ._micrograph import Calibration, ReadError
from ._source import Container, Signal, calibration_from_axes
from ._units import classify_unit, seconds_per_unit

_MAX_RESOLUTION_PIXEL_NM = 1e4  # 10 µm: bigger pixels from resolution tags are display DPI


def _ratio(value: Any) -> float | None:
    try:
        if isinstance(value, tuple) and len(value) == 2:
            num, den = float(value[0]), float(value[1])
            return num / den if den else None
        return float(value)
    except (TypeError, ValueError):
        return None


def _tag(page: Any, code: int) -> Any:
    tag = page.tags.get(code)
    return None if tag is None else tag.value


# ----------------------------------------------------------------------------- calibrations


def _fei(tf: Any) -> tuple[Calibration | None, dict[str, Any]]:
    meta = tf.fei_metadata
    if not meta:
        return None, {}
    md: dict[str, Any] = {}
    system = meta.get("System", {})
    model = system.get("SystemType") or system.get("Type")
    if model:
        md["instrument"] = str(model)
    beam = meta.get("Beam", {})
    try:
        hv = float(beam.get("HV"))
        if hv > 0:
            md["voltage_kV"] = hv / 1000.0
    except (TypeError, ValueError):
        pass
    user = meta.get("User", {})
    if user.get("Date"):
        for fmt in ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S"):
            try:
                stamp = datetime.datetime.strptime(f"{user['Date']} {user.get('Time', '')}", fmt)
                md["acquisition_time"] = stamp.isoformat(timespec="seconds")
                break
            except ValueError:
                continue
    detectors = meta.get("Detectors", {})
    if detectors.get("Name"):
        md["detector"] = str(detectors["Name"])
    for group in ("Scan", "EScan", "IScan"):
        scan = meta.get(group)
        if not isinstance(scan, dict):
            continue
        try:
            w, h = float(scan["PixelWidth"]), float(scan["PixelHeight"])
        except (KeyError, TypeError, ValueError):
            continue
        if w > 0 and h > 0:
            try:
                md["exposure_s"] = float(scan.get("Dwelltime") or scan["Dwell"])
            except (KeyError, TypeError, ValueError):
                pass
            return Calibration(w * 1e9, h * 1e9, f"file:FEI {group}.PixelWidth (m)"), md
    return None, md


def _zeiss(tf: Any, page: Any) -> tuple[Calibration | None, dict[str, Any]]:
    meta = _tag(page, 34118) if page.tags.get(34118) is not None else None
    if isinstance(meta, dict) and "" in meta and len(meta) == 1:
        meta = None
    if not isinstance(meta, dict):
        meta = tf.sem_metadata
    if not meta:
        return None, {}
    md: dict[str, Any] = {}

    def entry(key: str) -> tuple[Any, ...] | None:
        v = meta.get(key)
        return v if isinstance(v, tuple) and len(v) >= 2 else None

    serial = entry("sv_serial_number")
    if serial:
        md["instrument"] = str(serial[1])
    kv = entry("ap_actualkv")
    if kv and len(kv) >= 3:
        factor = {"kV": 1.0, "V": 1e-3}.get(str(kv[2]))
        if factor is not None:
            md["voltage_kV"] = float(kv[1]) * factor
    mag = entry("ap_mag")
    if mag:
        m = re.match(r"\s*([0-9.]+(?:[eE][-+]?\d+)?)\s*([kKM]?)", str(mag[1]))
        if m:
            md["magnification"] = (
                float(m.group(1)) * {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}[m.group(2)]
            )
    date, time = entry("ap_date"), entry("ap_time")
    if date:
        try:
            stamp = datetime.datetime.strptime(
                f"{date[1]} {time[1] if time else '0:00:00'}", "%d %b %Y %H:%M:%S"
            )
            md["acquisition_time"] = stamp.isoformat(timespec="seconds")
        except ValueError:
            md["acquisition_time_text"] = f"{date[1]} {time[1] if time else ''}".strip()
    det = entry("dp_detector_type")
    if det:
        md["detector"] = str(det[1])
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        px = entry(key)
        if px and len(px) >= 3:
            cal, _, problem = calibration_from_axes(
                px[1], px[2], px[1], px[2], f"file:CZ_SEM {key}"
            )
            if problem is None and cal is not None:
                return cal, md
    return None, md


def _gatan(page: Any) -> tuple[Calibration | None, str | None, tuple[float, str] | None]:
    sx, sy = _tag(page, 65009), _tag(page, 65010)
    ux, uy = _tag(page, 65003), _tag(page, 65004)
    if sx is None or sy is None or ux is None or uy is None:
        return None, None, None
    cal, _, problem = calibration_from_axes(sx, ux, sy, uy, "file:Gatan TIFF tags 65009/65010")
    z = None
    if _tag(page, 65011) is not None and _tag(page, 65005) is not None:
        z = (float(_tag(page, 65011)), str(_tag(page, 65005)))
    return cal, problem, z


def _ome(tf: Any, series_index: int) -> tuple[Calibration | None, str | None]:
    text = tf.ome_metadata
    if not text:
        return None, None
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None, None
    pixels = [el for el in root.iter() if el.tag.split("}")[-1] == "Pixels"]
    if not pixels:
        return None, None
    el = pixels[min(series_index, len(pixels) - 1)]
    sx, sy = el.get("PhysicalSizeX"), el.get("PhysicalSizeY")
    if sx is None or sy is None:
        return None, None
    ux = el.get("PhysicalSizeXUnit", "µm")
    uy = el.get("PhysicalSizeYUnit", "µm")
    cal, _, problem = calibration_from_axes(sx, ux, sy, uy, "file:OME PhysicalSizeX/Y")
    return cal, problem


def _imagej(tf: Any, page: Any) -> tuple[Calibration | None, str | None, str]:
    ij = tf.imagej_metadata
    if not ij:
        return None, None, ""
    unit = ij.get("unit")
    if unit is None:
        return None, None, "its ImageJ metadata has no unit (uncalibrated in ImageJ)"
    rx, ry = _ratio(_tag(page, 282)), _ratio(_tag(page, 283))
    if not rx or not ry:
        return None, None, f"its ImageJ unit is {unit!r} but there is no resolution tag"
    yunit = ij.get("yunit", unit)
    cal, note, problem = calibration_from_axes(
        1.0 / rx, unit, 1.0 / ry, yunit, "file:ImageJ unit + X/YResolution"
    )
    return cal, problem, note


def _tvips(tf: Any) -> Calibration | None:
    meta = tf.tvips_metadata
    if not meta:
        return None
    try:
        sx, sy = float(meta["PixelSizeX"]), float(meta["PixelSizeY"])
    except (KeyError, TypeError, ValueError):
        return None
    if sx > 0 and sy > 0:
        return Calibration(sx, sy, "file:TVIPS PixelSizeX/Y (nm)")
    return None


def _olympus(page: Any) -> tuple[Calibration | None, dict[str, Any]]:
    meta = _tag(page, 33560)
    if not isinstance(meta, dict):
        return None, {}
    md: dict[str, Any] = {}
    if meta.get("magnification"):
        md["magnification"] = float(meta["magnification"])
    if isinstance(meta.get("datetime"), datetime.datetime):
        md["acquisition_time"] = meta["datetime"].isoformat(timespec="seconds")
    try:
        sx, sy = float(meta["pixelsizex"]), float(meta["pixelsizey"])
    except (KeyError, TypeError, ValueError):
        return None, md
    if sx > 0 and sy > 0:
        return Calibration(sx * 1e9, sy * 1e9, "file:OlympusSIS pixelsizex/y (m)"), md
    return None, md


def _resolution(page: Any) -> tuple[Calibration | None, str]:
    rx, ry = _ratio(_tag(page, 282)), _ratio(_tag(page, 283))
    unit = _tag(page, 296)
    unit_code = int(unit) if unit is not None else 2
    if not rx or not ry:
        return None, "it has no calibration tag"
    name = {2: "inch", 3: "cm"}.get(unit_code)
    if name is None:
        return None, "its resolution tags have no unit (ResolutionUnit NONE)"
    per = classify_unit(name).nm_per_unit
    assert per is not None
    x_nm, y_nm = per / rx, per / ry
    if max(x_nm, y_nm) > _MAX_RESOLUTION_PIXEL_NM:
        return None, (
            f"its resolution tags say {rx:g} pixels per {name}, a display density, not a "
            "microscope calibration"
        )
    return Calibration(x_nm, y_nm, f"file:TIFF X/YResolution ({name})"), ""


def _jeol_sightx(page: Any) -> dict[str, Any]:
    desc = page.description or ""
    if "<TemReporter" not in desc[:400]:
        return {}
    md: dict[str, Any] = {"vendor": "JEOL SightX"}
    try:
        root = ET.fromstring(desc)
    except ET.ParseError:
        return md
    inst = root.findtext("Instruments")
    if inst:
        md["instrument"] = inst.strip()
    when = root.findtext("DateTime")
    if when:
        md["acquisition_time"] = when.strip()
    for el in root.iter("AccelerationVoltage"):
        try:
            md["voltage_kV"] = float(el.text or "") / 1000.0
            break
        except ValueError:
            continue
    return md


def _generic_metadata(page: Any) -> dict[str, Any]:
    md: dict[str, Any] = {}
    make, model = _tag(page, 271), _tag(page, 272)
    if model or make:
        md["instrument"] = " ".join(str(v).strip() for v in (make, model) if v)
    when = _tag(page, 306)
    if when:
        text = str(when).strip()
        for fmt in ("%Y:%m:%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M:%S"):
            try:
                md["acquisition_time"] = datetime.datetime.strptime(text, fmt).isoformat(
                    timespec="seconds"
                )
                break
            except ValueError:
                continue
        else:
            md["acquisition_time_text"] = text
    return md


def _fei_image_rows(tf: Any, shape: tuple[int, ...]) -> int | None:
    """Rows of the scanned image in an FEI / Thermo Fisher SEM/FIB TIFF whose page also holds
    the instrument's data bar below it (``[Image] ResolutionY`` smaller than the page height at
    the same width), else None. The bar (text, a scale bar, logos) is not part of the specimen."""
    image = (tf.fei_metadata or {}).get("Image")
    if not isinstance(image, dict) or len(shape) < 2:
        return None
    try:
        rows, cols = int(image["ResolutionY"]), int(image["ResolutionX"])
    except (KeyError, TypeError, ValueError):
        return None
    if cols == shape[1] and 0 < rows < shape[0]:
        return rows
    return None


# ----------------------------------------------------------------------------- frames


def _page_reader(tf: Any, page: Any) -> np.ndarray:
    a = page.asarray()
    key = getattr(page, "keyframe", None) or page  # a TiffFrame shares its keyframe's tags
    if int(getattr(key, "planarconfig", 1)) == 2 and a.ndim == 3:
        a = np.moveaxis(a, 0, -1)
    if int(getattr(key, "photometric", 1)) == 3:  # palette
        cmap = key.colormap
        if cmap is not None:
            # A grey ramp palette is a greyscale image. Zeiss SEM palettes reserve a few
            # entries for coloured annotations (the data bar): when at most 1 % of the pixels
            # use colour entries the image is taken as grey, and those pixels keep their index.
            cmap = np.asarray(cmap).astype(np.int64)
            n = cmap.shape[1]
            is_grey = (cmap[0] == cmap[1]) & (cmap[0] == cmap[2])
            used = np.bincount(a.reshape(-1).astype(np.int64), minlength=n)[:n]
            if used[~is_grey].sum() <= 0.01 * a.size:
                ramp = np.arange(n) * (65535 // max(n - 1, 1))
                if np.array_equal(cmap[0][is_grey], ramp[is_grey]):
                    return a
                lut = np.where(is_grey, cmap[0], ramp)
                if n <= 256 and not np.any(lut % 257):
                    return (lut // 257).astype(np.uint8)[a]
                return lut.astype(np.uint16)[a]
            return np.moveaxis(cmap[:, a].astype(np.uint16), 0, -1)
    if int(getattr(key, "photometric", 1)) == 0 and a.dtype.kind == "u":  # MINISWHITE
        a = np.iinfo(a.dtype).max - a
    return a


def _series_signal(tf: Any, path: pathlib.Path, k: int, series: Any) -> Signal:
    axes: str = series.axes
    shape = tuple(series.shape)
    name = f"series{k}" if not series.name else str(series.name)
    signal = Signal(name=name, frame_count=1, read_frame=lambda i: np.empty((0,)))
    signal.dtype = str(series.dtype)
    page0 = series.pages[0] if len(series.pages) else series.keyframe
    rgb = "S" in axes and shape[axes.index("S")] in (3, 4)
    frame_axes = [i for i, a in enumerate(axes) if a not in "YXS"]
    frames = int(np.prod([shape[i] for i in frame_axes])) if frame_axes else 1
    if "Y" not in axes or "X" not in axes:
        signal.problem = f"a TIFF series with axes {axes!r} and no image plane"
        return signal
    signal.shape = (shape[axes.index("Y")], shape[axes.index("X")]) + (
        (shape[axes.index("S")],) if rgb else ()
    )
    if "S" in axes and not rgb:
        signal.problem = f"a TIFF image with {shape[axes.index('S')]} samples per pixel"
        return signal
    signal.frame_count = frames
    pages = series.pages
    if frames == 1 or (len(pages) == frames and all(p is not None for p in pages)):
        frame_pages = [page0] if frames == 1 else list(pages)

        def read_page(i: int) -> np.ndarray:
            return _page_reader(tf, frame_pages[i])

        signal.read_frame = read_page
    elif (
        series.dataoffset is not None
        and int(getattr(page0, "photometric", 1)) in (1, 2)
        and int(getattr(page0, "planarconfig", 1)) == 1
    ):
        # contiguous, uncompressed frames without IFDs of their own (ImageJ stacks > 4 GB)
        dtype = np.dtype(series.dtype).newbyteorder(tf.byteorder)
        frame_shape = signal.shape
        nbytes = int(np.prod(frame_shape)) * dtype.itemsize
        fh = tf.filehandle
        offset = int(series.dataoffset)

        def read_contiguous(i: int) -> np.ndarray:
            fh.seek(offset + i * nbytes)
            buf = fh.read(nbytes)
            if len(buf) != nbytes:
                raise ReadError(f"{path}: truncated in frame {i} of the TIFF stack")
            return np.frombuffer(buf, dtype=dtype).reshape(frame_shape)

        signal.read_frame = read_contiguous
    else:
        # pages holding several frames each: read the series once (not lazy, but rare)
        cache: dict[str, np.ndarray] = {}

        def read_whole(i: int) -> np.ndarray:
            if "a" not in cache:
                a = series.asarray()
                cache["a"] = a.reshape((frames,) + signal.shape)
            return cache["a"][i]

        signal.read_frame = read_whole

    md = _generic_metadata(page0)
    md.update(_jeol_sightx(page0))
    rows = _fei_image_rows(tf, signal.shape)
    if rows is not None:  # the data bar below the image is cut off in every frame
        md["data_bar_rows_removed"] = signal.shape[0] - rows
        signal.shape = (rows,) + signal.shape[1:]
        read_full = signal.read_frame
        signal.read_frame = lambda i: read_full(i)[:rows]
    cal: Calibration | None = None
    notes: list[str] = []

    c, vendor_md = _fei(tf)
    md.update(vendor_md)
    cal = c
    if cal is None:
        c, vendor_md = _zeiss(tf, page0)
        md.update(vendor_md)
        cal = c
    if cal is None:
        c, problem, z = _gatan(page0)
        if problem:
            signal.problem = problem
            return signal
        cal = c
        if z is not None and frames > 1:
            per = seconds_per_unit(z[1])
            if per is not None:
                signal.timestamp = lambda i, s=z[0] * per: i * s
                md["timestamp_kind"] = "relative"
    if cal is None:
        c, problem = _ome(tf, k)
        if problem:
            signal.problem = problem
            return signal
        cal = c
    if cal is None:
        c, problem, note = _imagej(tf, page0)
        if problem:
            signal.problem = problem
            return signal
        cal = c
        if note:
            notes.append(note)
    ij = tf.imagej_metadata or {}
    if frames > 1 and signal.timestamp is None and ij.get("finterval"):
        try:
            step = float(ij["finterval"])
            signal.timestamp = lambda i, s=step: i * s
            md["timestamp_kind"] = "relative"
        except (TypeError, ValueError):
            pass
    if cal is None:
        cal = _tvips(tf)
    if cal is None:
        c, vendor_md = _olympus(page0)
        md.update(vendor_md)
        cal = c
    if cal is None and not ij:
        c, note = _resolution(page0)
        cal = c
        if note:
            notes.append(note)
    signal.calibration = cal
    signal.calibration_note = "; ".join(n for n in notes if n) or "it has no calibration tag"
    signal.metadata = md
    return signal


def open_tiff(path: pathlib.Path) -> Container:
    """Open a TIFF file: one signal per tifffile series, greyscale series first."""
    import tifffile

    tf = tifffile.TiffFile(path)
    container = Container(format="TIFF", signals=[])
    container.closers.append(tf.close)
    try:
        series = list(tf.series)
        if not series:
            raise ReadError(f"{path}: a TIFF file without any image")
        built = [_series_signal(tf, path, k, s) for k, s in enumerate(series)]
    except BaseException:
        container.close()
        raise
    # greyscale series before RGB ones (Olympus SIS stores an RGB preview first)
    built.sort(key=lambda s: len(s.shape) == 3)
    container.signals = built
    flags = [
        name
        for name in ("imagej", "ome", "fei", "sem", "tvips", "shaped")
        if getattr(tf, f"is_{name}", False)
    ]
    if flags:
        container.metadata["tiff_flavour"] = flags
    return container
