"""Registry of the segmentation models shipped with the package, and their metadata.

A model is named either by the stem of a file in ``antema_fast/models/`` (``"antema-unet"`` for
``antema-unet.onnx``) or by a path to any ONNX file that carries the ``antema.*`` metadata keys of
:mod:`antema_fast._preprocess`. An FP16 sibling (``<stem>.fp16.onnx``) next to the FP32 file is the
graph a TensorRT engine is built from; it is not listed as a model of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .._preprocess import (
    INPUT_NAME,
    META_METRICS,
    META_NAME,
    META_PAD_MULTIPLE,
    META_PIXEL_SIZE_NM,
    META_PREPROCESSING,
    META_THRESHOLD,
    META_TRAINING,
    META_VERSION,
    OUTPUT_NAME,
    Preprocessing,
)

DEFAULT_MODEL = "antema-unet"
FP16_SUFFIX = ".fp16.onnx"


def models_dir() -> Path:
    """Folder of the shipped models (it may not exist when no model is shipped).

    The first ``models`` folder found on the package's search path (an editable install spreads
    the package over the source tree and site-packages); the source folder when none exists.
    """
    import antema_fast

    roots = [Path(p) for p in getattr(antema_fast, "__path__", [])]
    roots.append(Path(str(resources.files("antema_fast"))))
    for root in roots:
        if (root / "models").is_dir():
            return root / "models"
    return Path(antema_fast.__file__).resolve().parent / "models"


def list_models() -> list[str]:
    """Names of the shipped models, sorted.

    Examples
    --------
    >>> isinstance(list_models(), list)
    True
    """
    folder = models_dir()
    if not folder.is_dir():
        return []
    return sorted(
        p.name[: -len(".onnx")] for p in folder.glob("*.onnx") if not p.name.endswith(FP16_SUFFIX)
    )


@dataclass(frozen=True)
class ModelInfo:
    """A segmentation model file and what its metadata says about it.

    Attributes
    ----------
    name : str
        ``antema.name`` from the metadata (the file stem when absent).
    path : Path
        The FP32 ONNX file.
    sha256 : str
        SHA-256 of the file's bytes (hex); identifies the model in provenance and engine caches.
    preprocessing : Preprocessing
        How an image becomes the network input.
    pad_multiple : int
        Height and width fed to the network must be multiples of this.
    pixel_size_nm : float or None
        Pixel size the model was trained at; None when trained across pixel sizes.
    threshold : float
        Probability above which a pixel is particle.
    version : str or None
        ``antema.version``.
    fp16_path : Path or None
        The FP16 sibling graph, when shipped.
    metadata : dict
        Every ``antema.*`` key, raw strings (metrics and training decoded when they are JSON).
    """

    name: str
    path: Path
    sha256: str
    preprocessing: Preprocessing
    pad_multiple: int
    pixel_size_nm: float | None
    threshold: float
    version: str | None
    fp16_path: Path | None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def summary(self) -> dict[str, Any]:
        """Plain dict for provenance records."""
        return {
            "name": self.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "version": self.version,
            "pad_multiple": self.pad_multiple,
            "pixel_size_nm": self.pixel_size_nm,
            "threshold": self.threshold,
            "preprocessing": json.loads(self.preprocessing.to_json()),
            "fp16_path": None if self.fp16_path is None else str(self.fp16_path),
        }


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_model_path(model: str | os.PathLike[str] | None) -> Path:
    """The ONNX file of a model given by name, by path, or None (the default shipped model).

    Raises
    ------
    FileNotFoundError
        When the name is not shipped or the path does not exist; the message lists what is shipped.
    """
    if model is None:
        model = DEFAULT_MODEL
    text = os.fspath(model)
    candidate = Path(text).expanduser()
    looks_like_path = (
        isinstance(model, os.PathLike) or text.endswith(".onnx") or os.sep in text or "/" in text
    )
    if looks_like_path:
        if candidate.is_file():
            return candidate.resolve()
        raise FileNotFoundError(f"model file {str(candidate)!r}: expected an ONNX file, not found")
    shipped = models_dir() / f"{text}.onnx"
    if shipped.is_file():
        return shipped
    names = list_models()
    listing = ", ".join(names) if names else "none"
    raise FileNotFoundError(
        f"model {text!r}: expected a shipped model name or a path to an ONNX file; shipped models "
        f"in {models_dir()}: {listing}. Without a model, use backend='threshold'."
    )


def read_onnx_metadata(path: str | os.PathLike[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """Custom metadata map and input/output names of an ONNX file (via ONNX Runtime)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ValueError(
            f"model file {os.fspath(path)!r}: not a readable ONNX model ({exc})"
        ) from exc
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    return meta, [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _parse_pixel_size(raw: str | None, path: Path) -> float | None:
    if raw is None or raw.strip().lower() in ("", "null", "none"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"model file {str(path)!r}: {META_PIXEL_SIZE_NM} expected a number or 'null', "
            f"got {raw!r}"
        ) from None
    if not value > 0:
        raise ValueError(
            f"model file {str(path)!r}: {META_PIXEL_SIZE_NM} expected > 0, got {raw!r}"
        )
    return value


def model_info_from_path(path: Path) -> ModelInfo:
    """Read and validate the metadata of one ONNX file (uncached; see :func:`load_model_info`)."""
    meta, inputs, outputs = read_onnx_metadata(path)
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise ValueError(
            f"model file {str(path)!r}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, "
            f"got inputs {inputs} and outputs {outputs}"
        )
    missing = [k for k in (META_PREPROCESSING, META_PAD_MULTIPLE) if k not in meta]
    if missing:
        raise ValueError(
            f"model file {str(path)!r}: expected metadata keys {missing} (written at export), "
            f"got keys {sorted(meta)}"
        )
    preprocessing = Preprocessing.from_json(meta[META_PREPROCESSING])
    try:
        pad_multiple = int(meta[META_PAD_MULTIPLE])
    except ValueError:
        pad_multiple = 0
    if pad_multiple < 1:
        raise ValueError(
            f"model file {str(path)!r}: {META_PAD_MULTIPLE} expected an integer ≥ 1, "
            f"got {meta[META_PAD_MULTIPLE]!r}"
        )
    threshold = float(meta.get(META_THRESHOLD, "0.5"))
    if not 0.0 < threshold < 1.0:
        raise ValueError(
            f"model file {str(path)!r}: {META_THRESHOLD} expected in (0, 1), got {threshold!r}"
        )
    fp16 = (
        path.with_name(path.name[: -len(".onnx")] + FP16_SUFFIX)
        if path.name.endswith(".onnx")
        else None
    )
    decoded: dict[str, Any] = dict(meta)
    for key in (META_METRICS, META_TRAINING):
        if key in decoded:
            decoded[key] = _maybe_json(decoded[key])
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.stem
    return ModelInfo(
        name=meta.get(META_NAME, stem),
        path=path,
        sha256=file_sha256(path),
        preprocessing=preprocessing,
        pad_multiple=pad_multiple,
        pixel_size_nm=_parse_pixel_size(meta.get(META_PIXEL_SIZE_NM), path),
        threshold=threshold,
        version=meta.get(META_VERSION),
        fp16_path=fp16 if fp16 is not None and fp16.is_file() else None,
        metadata=decoded,
    )


@lru_cache(maxsize=16)
def _cached_info(path: str, mtime_ns: int, size: int) -> ModelInfo:
    return model_info_from_path(Path(path))


def load_model_info(model: str | os.PathLike[str] | None = None) -> ModelInfo:
    """Resolve a model (name, path or None for the default) and read its metadata.

    Results are cached per file path, modification time and size, so repeated calls are cheap
    and a replaced file is read again.

    Examples
    --------
    >>> try:
    ...     info = load_model_info("no-such-model")
    ... except FileNotFoundError as e:
    ...     print("shipped models" in str(e))
    True
    """
    path = resolve_model_path(model)
    st = path.stat()
    return _cached_info(str(path), st.st_mtime_ns, st.st_size)
