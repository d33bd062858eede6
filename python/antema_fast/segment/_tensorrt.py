"""TensorRT backend: a strongly typed engine built from the FP16 ONNX graph, cached on disk.

TensorRT ≥ 10.12 and pycuda are the ``[gpu]`` extra and are imported only when this backend is
used. The code follows the TensorRT 10/11 name-based API:

- TensorRT 11 has no weak typing (no ``BuilderFlag.FP16``): precision is whatever the ONNX graph
  says, so the engine is built from the FP16 graph shipped beside the model
  (``<name>.fp16.onnx``, FP32 input/output). On 10.x the network is created with
  ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` for the same behaviour.
- One optimisation profile (``set_shape(name, min, opt, max)``) covers the frame sizes in use.
- A serialised engine only runs on the TensorRT version and GPU model that built it, so the cache
  key holds the graph's SHA-256, the TensorRT version, the GPU name and the profile.
- Inference: pinned host buffers (``cuda.pagelocked_empty``), device buffers, one ``cuda.Stream``;
  per call ``set_input_shape``, ``set_tensor_address`` and ``execute_async_v3``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .._preprocess import INPUT_NAME, OUTPUT_NAME
from ._models import ModelInfo, file_sha256
from ._tiling import plan_tiles, round_up

log = logging.getLogger("antema_fast.segment")

ENGINE_CACHE_ENV = "ANTEMA_ENGINE_CACHE"
GPU_EXTRA_HINT = "pip install 'antema_fast[gpu]' (tensorrt, pycuda)"

Shape = tuple[int, int, int, int]


def engine_cache_dir() -> Path:
    """Where engines are cached: ``$ANTEMA_ENGINE_CACHE`` or ``~/.cache/antema_fast/engines``."""
    env = os.environ.get(ENGINE_CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "antema_fast" / "engines"


def import_tensorrt() -> tuple[ModuleType, ModuleType]:
    """Import ``tensorrt`` and ``pycuda.driver``; if absent, ImportError names the extra."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError(
            f"the TensorRT backend needs the [gpu] extra: {GPU_EXTRA_HINT}; "
            f"importing tensorrt failed: {exc}"
        ) from exc
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise ImportError(
            f"the TensorRT backend needs the [gpu] extra: {GPU_EXTRA_HINT}; "
            f"importing pycuda failed: {exc}"
        ) from exc
    return trt, cuda


def gpu_name(cuda: ModuleType, device: int = 0) -> str:
    """Name of CUDA device ``device`` (initialises the driver); RuntimeError when there is none."""
    cuda.init()
    count = cuda.Device.count()
    if count <= device:
        raise RuntimeError(f"expected a CUDA device #{device}, found {count} device(s)")
    return str(cuda.Device(device).name())


@dataclass(frozen=True)
class Profile:
    """Optimisation profile of the input tensor: min, opt and max shapes [N, 1, H, W]."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        for a, b, what in ((self.min, self.opt, "min ≤ opt"), (self.opt, self.max, "opt ≤ max")):
            if len(a) != 4 or len(b) != 4 or any(x > y for x, y in zip(a, b, strict=True)):
                raise ValueError(f"profile: expected {what} element-wise, got {a} and {b}")

    def covers(self, shape: Sequence[int]) -> bool:
        """Whether an input of this shape can run on an engine with this profile."""
        return len(shape) == 4 and all(
            lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True)
        )

    def to_dict(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in asdict(self).items()}

    def describe(self) -> str:
        """Short text, e.g. ``1x1x1024x1024-4x1x2048x2048-4x1x2048x2048``."""
        return "-".join("x".join(str(d) for d in s) for s in (self.min, self.opt, self.max))


def network_shape(size: tuple[int, int], multiple: int, tile_size: int) -> tuple[int, int]:
    """Height and width the network sees for a frame of ``size``: padded, or one tile's shape."""
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"frame size: expected positive height and width, got {size}")
    return plan_tiles(
        (round_up(h, multiple), round_up(w, multiple)), tile_size, multiple
    ).tile_shape


def choose_profile(
    sizes: Sequence[tuple[int, int]], batch: int, multiple: int, tile_size: int
) -> Profile:
    """Profile covering frames of ``sizes`` (as given, before padding) in batches up to ``batch``.

    min is batch 1 at the smallest network shape, max is ``batch`` at the largest, and opt is
    ``batch`` at the most frequent shape (ties: the largest), where TensorRT tunes its kernels.

    Examples
    --------
    >>> choose_profile([(1000, 1000), (2048, 2048)], 4, 32, 2048).describe()
    '1x1x1024x1024-4x1x2048x2048-4x1x2048x2048'
    >>> choose_profile([(4096, 4096)], 2, 32, 2048).max
    (2, 1, 2048, 2048)
    """
    if not sizes:
        raise ValueError("sizes: expected at least one frame size, got none")
    if batch < 1:
        raise ValueError(f"batch: expected an integer ≥ 1, got {batch!r}")
    shapes = [network_shape(s, multiple, tile_size) for s in sizes]
    hs, ws = [s[0] for s in shapes], [s[1] for s in shapes]
    counts = Counter(shapes)
    opt = max(counts, key=lambda s: (counts[s], s[0] * s[1], s))
    return Profile(
        min=(1, 1, min(hs), min(ws)),
        opt=(batch, 1, opt[0], opt[1]),
        max=(batch, 1, max(hs), max(ws)),
    )


def engine_key(model_sha256: str, trt_version: str, gpu: str, profile: Profile) -> str:
    """Cache key (hex SHA-256) of an engine: graph hash, TensorRT version, GPU name, profile."""
    payload = json.dumps(
        {
            "model_sha256": model_sha256,
            "tensorrt": trt_version,
            "gpu": gpu,
            "profile": profile.to_dict(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class EngineCache:
    """Serialised engines on disk, one ``<name>-<key>.engine`` file and a ``.json`` sidecar each.

    The sidecar records what the key was made of; an engine whose sidecar is missing or
    disagrees, or which the runtime refuses, is rebuilt and replaced.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else engine_cache_dir()

    def path(self, model_name: str, key: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_name)
        return self.directory / f"{safe}-{key[:24]}.engine"

    @staticmethod
    def fields(model_sha256: str, trt_version: str, gpu: str, profile: Profile) -> dict[str, Any]:
        return {
            "model_sha256": model_sha256,
            "tensorrt": trt_version,
            "gpu": gpu,
            "profile": profile.to_dict(),
            "key": engine_key(model_sha256, trt_version, gpu, profile),
        }

    def lookup(self, model_name: str, fields: dict[str, Any]) -> bytes | None:
        """Cached engine bytes for these key fields, or None (missing or stale)."""
        path = self.path(model_name, fields["key"])
        sidecar = path.with_suffix(".json")
        if not path.is_file():
            return None
        try:
            recorded = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            log.info("engine cache: %s has no readable sidecar; rebuilding", path)
            return None
        if recorded != fields:
            log.info("engine cache: %s was built for other inputs; rebuilding", path)
            return None
        return path.read_bytes()

    def store(self, model_name: str, fields: dict[str, Any], engine: bytes) -> Path:
        """Write an engine and its sidecar atomically; returns the engine path."""
        path = self.path(model_name, fields["key"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(engine)
        os.replace(tmp, path)
        side_tmp = path.with_name(path.name + f".json.tmp{os.getpid()}")
        side_tmp.write_text(json.dumps(fields, sort_keys=True, indent=1))
        os.replace(side_tmp, path.with_suffix(".json"))
        return path

    def invalidate(self, model_name: str, fields: dict[str, Any]) -> None:
        """Remove one cached engine and its sidecar (e.g. after the runtime refused it)."""
        path = self.path(model_name, fields["key"])
        for p in (path, path.with_suffix(".json")):
            p.unlink(missing_ok=True)

    def get_or_build(
        self, model_name: str, fields: dict[str, Any], build: Callable[[], bytes]
    ) -> tuple[bytes, bool]:
        """Engine bytes from the cache, or from ``build()`` (then stored); second item: built?"""
        cached = self.lookup(model_name, fields)
        if cached is not None:
            return cached, False
        engine = build()
        self.store(model_name, fields, engine)
        return engine, True


def fp16_graph(info: ModelInfo, cache: EngineCache) -> Path:
    """The FP16 ONNX graph of a model: the shipped sibling, else a conversion cached beside engines.

    Without a sibling and without ``onnxconverter-common`` the FP32 graph is returned (the engine
    is then FP32, which is logged).
    """
    if info.fp16_path is not None:
        return info.fp16_path
    target = cache.directory / f"{info.name}-{info.sha256[:16]}.fp16.onnx"
    if target.is_file():
        return target
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError as exc:
        log.warning(
            "model %s has no FP16 sibling and onnxconverter-common is absent (%s); "
            "building an FP32 engine",
            info.path,
            exc,
        )
        return info.path
    model16 = float16.convert_float_to_float16(onnx.load(os.fspath(info.path)), keep_io_types=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    onnx.save(model16, os.fspath(tmp))
    os.replace(tmp, target)
    log.info("converted %s to FP16 at %s", info.path, target)
    return target


def build_serialized_engine(trt: ModuleType, onnx_path: Path, profile: Profile) -> bytes:
    """Build a strongly typed engine from an ONNX file with one optimisation profile."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {str(onnx_path)!r}: {errors}")
    config = builder.create_builder_config()
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f"TensorRT failed to build an engine from {str(onnx_path)!r} for profile "
            f"{profile.describe()} (see the TensorRT log above)"
        )
    return bytes(serialized)


def build_engine(
    info: ModelInfo, profile: Profile, cache: EngineCache | None = None, device: int = 0
) -> tuple[Path, bool]:
    """Build (or find) the cached engine of a model for a profile; returns (path, built)."""
    trt, cuda = import_tensorrt()
    cache = cache or EngineCache()
    gpu = gpu_name(cuda, device)
    onnx_path = fp16_graph(info, cache)
    fields = cache.fields(file_sha256(onnx_path), str(trt.__version__), gpu, profile)
    _, built = cache.get_or_build(
        info.name, fields, lambda: build_serialized_engine(trt, onnx_path, profile)
    )
    return cache.path(info.name, fields["key"]), built


class TensorRTBackend:
    """Runs a cached TensorRT engine through pycuda with pinned buffers and one CUDA stream.

    Parameters
    ----------
    info : ModelInfo
        The model; the engine is built from its FP16 graph.
    profile : Profile
        Optimisation profile; inputs outside it raise ValueError (build a wider one).
    cache : EngineCache or None
        Engine cache (default folder when None).
    device : int
        CUDA device ordinal.
    """

    def __init__(
        self, info: ModelInfo, profile: Profile, cache: EngineCache | None = None, device: int = 0
    ) -> None:
        trt, cuda = import_tensorrt()
        self._trt, self._cuda = trt, cuda
        self.gpu = gpu_name(cuda, device)
        self._ctx = cuda.Device(device).retain_primary_context()
        self.profile = profile
        self.cache = cache or EngineCache()
        self.name = "tensorrt"
        self.max_batch = profile.max[0]
        self._lock = threading.Lock()
        self.onnx_path = fp16_graph(info, self.cache)
        fields = self.cache.fields(
            file_sha256(self.onnx_path), str(trt.__version__), self.gpu, profile
        )
        self.engine_path = self.cache.path(info.name, fields["key"])
        self._ctx.push()
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            blob, built = self.cache.get_or_build(
                info.name, fields, lambda: build_serialized_engine(trt, self.onnx_path, profile)
            )
            engine = self._runtime.deserialize_cuda_engine(blob)
            if engine is None and not built:
                log.warning(
                    "cached engine %s was refused by the runtime; rebuilding", self.engine_path
                )
                self.cache.invalidate(info.name, fields)
                blob, built = self.cache.get_or_build(
                    info.name,
                    fields,
                    lambda: build_serialized_engine(trt, self.onnx_path, profile),
                )
                engine = self._runtime.deserialize_cuda_engine(blob)
            if engine is None:
                raise RuntimeError(f"TensorRT could not deserialise engine {self.engine_path}")
            self.built = built
            self._engine = engine
            self._context = engine.create_execution_context()
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            modes = {n: engine.get_tensor_mode(n) for n in names}
            inputs = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
            outputs = [n for n in names if modes[n] == trt.TensorIOMode.OUTPUT]
            if inputs != [INPUT_NAME] or OUTPUT_NAME not in outputs:
                raise RuntimeError(
                    f"engine {self.engine_path}: expected input {INPUT_NAME!r} and output "
                    f"{OUTPUT_NAME!r}, got inputs {inputs} and outputs {outputs}"
                )
            self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(INPUT_NAME)))
            self._out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(OUTPUT_NAME)))
            volume = int(np.prod(profile.max))
            self._h_in = cuda.pagelocked_empty(volume, self._in_dtype)
            self._h_out = cuda.pagelocked_empty(volume, self._out_dtype)
            self._d_in = cuda.mem_alloc(self._h_in.nbytes)
            self._d_out = cuda.mem_alloc(self._h_out.nbytes)
            self._stream = cuda.Stream()
            self._context.set_tensor_address(INPUT_NAME, int(self._d_in))
            self._context.set_tensor_address(OUTPUT_NAME, int(self._d_out))
        finally:
            cuda.Context.pop()
        log.info(
            "TensorRT engine %s (%s) on %s, profile %s",
            self.engine_path,
            "built" if self.built else "from cache",
            self.gpu,
            profile.describe(),
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probability [N, 1, H, W] float32 for an input batch [N, 1, H, W] float32."""
        shape = tuple(int(s) for s in batch.shape)
        if not self.profile.covers(shape):
            raise ValueError(
                f"input shape {shape}: outside the engine's profile {self.profile.describe()} "
                "(build an engine for these sizes: antema engine build --sizes HxW)"
            )
        cuda = self._cuda
        vol = int(np.prod(shape))
        with self._lock:
            self._ctx.push()
            try:
                h_in = self._h_in[:vol]
                np.copyto(h_in.reshape(shape), batch, casting="same_kind")
                self._context.set_input_shape(INPUT_NAME, shape)
                out_shape = tuple(int(s) for s in self._context.get_tensor_shape(OUTPUT_NAME))
                out_vol = int(np.prod(out_shape))
                cuda.memcpy_htod_async(self._d_in, h_in, self._stream)
                if not self._context.execute_async_v3(self._stream.handle):
                    raise RuntimeError(f"TensorRT execution failed for input shape {shape}")
                h_out = self._h_out[:out_vol]
                cuda.memcpy_dtoh_async(h_out, self._d_out, self._stream)
                self._stream.synchronize()
                result = h_out.reshape(out_shape).astype(np.float32, copy=True)
            finally:
                cuda.Context.pop()
        return result

    def info(self) -> dict[str, object]:
        """Provenance of the engine."""
        return {
            "engine": "tensorrt",
            "tensorrt_version": str(self._trt.__version__),
            "gpu": self.gpu,
            "engine_file": str(self.engine_path),
            "onnx_graph": str(self.onnx_path),
            "profile": self.profile.to_dict(),
        }


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """Parse ``"1024x1024,2048x2048"`` (height x width) into a list of sizes.

    Examples
    --------
    >>> parse_sizes("1024x1024, 2048x1536")
    [(1024, 1024), (2048, 1536)]
    """
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            h, w = (int(v) for v in part.split("x"))
        except ValueError:
            raise ValueError(f"size {part!r}: expected HEIGHTxWIDTH, e.g. 2048x2048") from None
        if h < 1 or w < 1:
            raise ValueError(f"size {part!r}: expected positive height and width")
        sizes.append((h, w))
    if not sizes:
        raise ValueError(f"sizes {text!r}: expected at least one HEIGHTxWIDTH")
    return sizes


def build_engine_for(
    model: str | os.PathLike[str] | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
    batch: int | None = None,
    tile_size: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Path, bool, Profile]:
    """Build ahead of time the engine a :class:`~antema_fast.segment.Segmenter` would use.

    Defaults match the Segmenter's (``DEFAULT_ENGINE_SIZES``, ``DEFAULT_ENGINE_BATCH``,
    ``Settings().tile_size``), so that building with no arguments pre-builds its engine.
    Returns the engine path, whether it was built now (False: found in the cache) and the profile.
    """
    from .._settings import Settings
    from ._models import load_model_info
    from ._segmenter import DEFAULT_ENGINE_BATCH, DEFAULT_ENGINE_SIZES

    import_tensorrt()  # fail first, with the [gpu] hint, before touching the model
    info = load_model_info(model)
    profile = choose_profile(
        list(sizes) if sizes else list(DEFAULT_ENGINE_SIZES),
        int(batch) if batch else DEFAULT_ENGINE_BATCH,
        info.pad_multiple,
        int(tile_size) if tile_size else Settings().tile_size,
    )
    path, built = build_engine(info, profile, EngineCache(cache_dir))
    return path, built, profile
