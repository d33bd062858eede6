"""HDF5-based files: Velox EMD (Thermo Fisher), Berkeley EMD (NCEM) and HyperSpy ``.hspy``.

All three are read with h5py (a dependency of ncempy) directly, so that frames of a stack are
read one at a time from the HDF5 dataset.

* Velox: every ``/Data/Image/<uuid>`` group holds ``Data`` (rows × cols × frames) and
  ``Metadata`` (one JSON document per frame, as UTF-8 bytes in a uint8 column). The pixel size
  is ``BinaryResult.PixelSize.width/height`` with units ``BinaryResult.PixelUnitX/Y``.
* Berkeley EMD: every group with the attribute ``emd_group_type = 1`` holds ``data`` and one
  ``dimN`` vector per axis whose ``units`` attribute is the unit (``n_m`` meaning nm is common)
  and whose step is the pixel size.
* HyperSpy: ``/Experiments/<title>/data`` with ``axis-K`` groups holding ``scale``, ``units``
  and ``navigate`` (navigation axes become frames).
"""

from __future__ import annotations

import datetime
import json
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ._micrograph import ReadError
from ._source import Container, Signal, calibration_from_axes
from ._units import classify_unit, seconds_per_unit


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.size == 1:
        return _text(v.reshape(-1)[0])
    return str(v)


def open_hdf5(path: pathlib.Path) -> Container:
    """Open an HDF5 microscope file of one of the three supported layouts."""
    import h5py

    h = h5py.File(path, "r")
    try:
        if "Data" in h and isinstance(h["Data"], h5py.Group) and "Image" in h["Data"]:
            container = _velox(h, path)
        elif _berkeley_groups(h):
            container = _berkeley(h, path)
        elif _text(h.attrs.get("file_format", "")).lower() == "hyperspy":
            container = _hyperspy(h, path)
        elif "Data" in h and isinstance(h["Data"], h5py.Group):
            container = Container(format="Velox EMD", signals=[])
            kinds = ", ".join(sorted(h["Data"].keys())) or "nothing"
            raise ReadError(
                f"{path}: a Velox EMD file without any image (its Data group holds {kinds})"
            )
        else:
            raise ReadError(
                f"{path}: an HDF5 file that is neither a Velox EMD, a Berkeley EMD nor a "
                "HyperSpy file (no /Data/Image, no emd_group_type groups, no file_format)"
            )
    except BaseException:
        h.close()
        raise
    container.closers.append(h.close)
    return container


def _slicer(ds: Any, axis: int | None) -> Callable[[int], np.ndarray]:
    """Frame ``i`` of an HDF5 dataset along ``axis`` (None: the whole 2-D dataset)."""

    def read_frame(i: int) -> np.ndarray:
        if axis is None:
            return np.asarray(ds[...])
        index: list[Any] = [slice(None)] * ds.ndim
        index[axis] = i
        return np.asarray(ds[tuple(index)])

    return read_frame


def _nav_slicer(ds: Any, nav: tuple[int, ...]) -> Callable[[int], np.ndarray]:
    """Frame ``i`` of a dataset whose leading axes (shape ``nav``) are navigation axes."""

    def read_frame(i: int) -> np.ndarray:
        return np.asarray(ds[np.unravel_index(i, nav)] if nav else ds[...])

    return read_frame


# ----------------------------------------------------------------------------- Velox


def _velox_json(meta: Any, column: int) -> dict[str, Any]:
    raw = np.asarray(meta[:, column])
    raw = raw[raw > 0]
    return json.loads(raw.tobytes().decode("utf-8", "ignore"))


def _velox_metadata(doc: dict[str, Any]) -> dict[str, Any]:
    md: dict[str, Any] = {}
    instr = doc.get("Instrument", {})
    model = instr.get("InstrumentModel") or instr.get("InstrumentClass")
    if model:
        md["instrument"] = str(model)
    optics = doc.get("Optics", {})
    try:
        md["voltage_kV"] = float(optics["AccelerationVoltage"]) / 1000.0
    except (KeyError, TypeError, ValueError):
        pass
    try:
        mag = float(optics["NominalMagnification"])
        if mag > 0:
            md["magnification"] = mag
    except (KeyError, TypeError, ValueError):
        pass
    try:
        t = int(doc["Acquisition"]["AcquisitionStartDatetime"]["DateTime"])
        if t > 0:
            md["acquisition_time"] = datetime.datetime.fromtimestamp(
                t, tz=datetime.timezone.utc
            ).isoformat(timespec="seconds")
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        pass
    detector = doc.get("BinaryResult", {}).get("Detector")
    if detector:
        md["detector"] = str(detector)
    for key in ("ExposureTime",):
        for det in doc.get("Detectors", {}).values():
            if isinstance(det, dict) and det.get("DetectorName") == detector and key in det:
                try:
                    md["exposure_s"] = float(det[key])
                except (TypeError, ValueError):
                    pass
    return md


def _is_eds_map(detector: str) -> bool:
    d = detector.lower().replace("-", "")
    return d.startswith("superx") or d.startswith("eds") or d.startswith("edx")


def _velox(h: Any, path: pathlib.Path) -> Container:
    container = Container(format="Velox EMD", signals=[])
    groups = list(h["Data"]["Image"].values())
    if not groups:
        raise ReadError(f"{path}: a Velox EMD file whose /Data/Image group is empty")
    entries = []
    for g in groups:
        try:
            doc = _velox_json(g["Metadata"], 0)
        except (KeyError, ValueError) as exc:
            raise ReadError(f"{path}: Velox image metadata could not be parsed: {exc}") from exc
        detector = str(doc.get("BinaryResult", {}).get("Detector", "") or "image")
        entries.append((g, doc, detector))
    # imaging detectors first, EDS element maps (SuperX) after them, each in file order
    entries.sort(key=lambda e: _is_eds_map(e[2]))
    seen: dict[str, int] = {}
    for g, doc, detector in entries:
        seen[detector] = seen.get(detector, 0) + 1
        name = detector if seen[detector] == 1 else f"{detector}#{seen[detector]}"
        ds = g["Data"]
        md = _velox_metadata(doc)
        signal = Signal(name=name, frame_count=1, read_frame=lambda i: np.empty((0,)), metadata=md)
        container.signals.append(signal)
        if ds.ndim not in (2, 3):
            signal.problem = f"a {ds.ndim}-D dataset {ds.shape}, not an image"
            continue
        frames = ds.shape[2] if ds.ndim == 3 else 1
        signal.frame_count = frames
        signal.shape = tuple(ds.shape[:2])
        signal.dtype = str(ds.dtype)
        signal.read_frame = _slicer(ds, 2 if ds.ndim == 3 else None)
        br = doc.get("BinaryResult", {})
        size = br.get("PixelSize", {})
        cal, note, problem = calibration_from_axes(
            size.get("width"),
            br.get("PixelUnitX", ""),
            size.get("height"),
            br.get("PixelUnitY", ""),
            "file:Velox BinaryResult.PixelSize",
        )
        signal.calibration, signal.calibration_note, signal.problem = cal, note, problem
        if frames > 1 and "FrameLookupTable" in g:
            table = np.asarray(g["FrameLookupTable"][...]).reshape(-1)
            meta = g["Metadata"]

            def stamp(i: int, table: np.ndarray = table, meta: Any = meta) -> float | None:
                col = int(table[i]) if i < table.size else i
                col = min(col, meta.shape[1] - 1)
                try:
                    doc_i = _velox_json(meta, col)
                    t = float(doc_i["Acquisition"]["AcquisitionStartDatetime"]["DateTime"])
                except (KeyError, TypeError, ValueError):
                    return None
                return t if t > 0 else None

            signal.timestamp = stamp
            signal.metadata["timestamp_kind"] = "unix"
    return container


# ----------------------------------------------------------------------------- Berkeley EMD


def _berkeley_groups(h: Any) -> list[Any]:
    import h5py

    found: list[Any] = []

    def visit(_name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and _text(obj.attrs.get("emd_group_type", "")) == "1":
            found.append(obj)

    h.visititems(visit)
    return found


def _berkeley_metadata(h: Any) -> dict[str, Any]:
    md: dict[str, Any] = {}
    if "microscope" in h:
        a = h["microscope"].attrs
        name = _text(a.get("name", "")).strip()
        if name:
            md["instrument"] = name
        for key in ("high tension", "voltage"):
            try:
                v = float(_text(a.get(key, "")))
                md["voltage_kV"] = v / 1000.0 if v > 1000 else v
                break
            except ValueError:
                pass
        try:
            mag = float(_text(a.get("magnification", "")))
            if mag > 0:
                md["magnification"] = mag
        except ValueError:
            pass
    return md


def _axis_step(dim: Any) -> float | None:
    v = np.asarray(dim[...], dtype=np.float64).reshape(-1)
    if v.size < 2:
        return None
    return float(v[1] - v[0])


def _berkeley(h: Any, path: pathlib.Path) -> Container:
    container = Container(format="Berkeley EMD", signals=[])
    file_md = _berkeley_metadata(h)
    for g in _berkeley_groups(h):
        name = g.name.strip("/").split("/")[-1] or "data"
        signal = Signal(
            name=name, frame_count=1, read_frame=lambda i: np.empty((0,)), metadata=dict(file_md)
        )
        container.signals.append(signal)
        if "data" not in g:
            signal.problem = "an EMD group without a data set"
            continue
        ds = g["data"]
        signal.shape = tuple(ds.shape)
        signal.dtype = str(ds.dtype)
        dims = []
        for k in range(1, ds.ndim + 1):
            d = g.get(f"dim{k}")
            unit = _text(d.attrs.get("units", "")) if d is not None else ""
            step = _axis_step(d) if d is not None else None
            dims.append((unit, step))
        if ds.ndim == 2:
            frames, frame_axis = 1, None
        elif ds.ndim == 3:
            kinds = [classify_unit(u).kind for u, _ in dims]
            if kinds[1] == "length" and kinds[2] == "length" and kinds[0] != "length":
                frame_axis = 0
            elif kinds[0] == "length" and kinds[1] == "length" and kinds[2] != "length":
                frame_axis = 2
            else:
                frame_axis = 0
            frames = ds.shape[frame_axis]
        else:
            signal.problem = f"a {ds.ndim}-D dataset {ds.shape}, not an image or image stack"
            continue
        if frame_axis == 2:
            image_dims = dims[0:2]
            signal.shape = tuple(ds.shape[:2])
            signal.read_frame = _slicer(ds, 2)
        elif frame_axis == 0:
            image_dims = dims[1:3]
            signal.shape = tuple(ds.shape[1:])
            signal.read_frame = _slicer(ds, 0)
        else:
            image_dims = dims
            signal.read_frame = _slicer(ds, None)
        signal.frame_count = frames
        (uy, sy), (ux, sx) = image_dims
        cal, note, problem = calibration_from_axes(sx, ux, sy, uy, "file:EMD dim vectors")
        signal.calibration, signal.calibration_note, signal.problem = cal, note, problem
        if frames > 1 and frame_axis is not None:
            unit, step = dims[frame_axis]
            per = seconds_per_unit(unit)
            if per is not None and step is not None:
                signal.timestamp = lambda i, s=step * per: i * s
                signal.metadata["timestamp_kind"] = "relative"
    return container


# ----------------------------------------------------------------------------- HyperSpy


def _hyperspy(h: Any, path: pathlib.Path) -> Container:
    container = Container(format="HyperSpy", signals=[])
    experiments = h.get("Experiments")
    if experiments is None or not len(experiments):
        raise ReadError(f"{path}: a HyperSpy file without any /Experiments entry")
    for title, g in experiments.items():
        signal = Signal(name=str(title), frame_count=1, read_frame=lambda i: np.empty((0,)))
        container.signals.append(signal)
        if "data" not in g:
            signal.problem = "an entry without data"
            continue
        ds = g["data"]
        axes = []
        for k in range(ds.ndim):
            a = g.get(f"axis-{k}")
            attrs = a.attrs if a is not None else {}
            axes.append(
                (
                    _text(attrs.get("units", "")),
                    _text(attrs.get("scale", "1")),
                    _text(attrs.get("navigate", "False")).lower() == "true",
                )
            )
        md: dict[str, Any] = {}
        tem = g.get("metadata/Acquisition_instrument/TEM")
        if tem is not None:
            a = tem.attrs
            if "microscope" in a:
                md["instrument"] = _text(a["microscope"])
            for key, out in (("beam_energy", "voltage_kV"), ("magnification", "magnification")):
                try:
                    md[out] = float(_text(a[key]))
                except (KeyError, ValueError):
                    pass
        general = g.get("metadata/General")
        if general is not None and "date" in general.attrs:
            md["acquisition_time"] = (
                f"{_text(general.attrs['date'])}T{_text(general.attrs.get('time', '00:00:00'))}"
            )
        signal.metadata = md
        signal.dtype = str(ds.dtype)
        sig_axes = [k for k, ax in enumerate(axes) if not ax[2]]
        nav_axes = [k for k, ax in enumerate(axes) if ax[2]]
        if len(sig_axes) != 2 or sig_axes != [ds.ndim - 2, ds.ndim - 1]:
            signal.problem = (
                f"a HyperSpy signal with {len(sig_axes)} signal axes (shape {ds.shape}), "
                "not an image"
            )
            continue
        frames = int(np.prod([ds.shape[k] for k in nav_axes])) if nav_axes else 1
        nav_shape = tuple(ds.shape[k] for k in nav_axes)
        signal.frame_count = frames
        signal.shape = tuple(ds.shape[-2:])
        signal.read_frame = _nav_slicer(ds, nav_shape)
        (uy, sy, _), (ux, sx, _) = axes[-2], axes[-1]
        cal, note, problem = calibration_from_axes(sx, ux, sy, uy, "file:HyperSpy axis scale")
        signal.calibration, signal.calibration_note, signal.problem = cal, note, problem
    return container
