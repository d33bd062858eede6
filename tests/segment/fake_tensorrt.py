"""In-memory stand-ins for ``tensorrt`` and ``pycuda.driver``, for CPU tests of the TensorRT path.

They implement just the calls the backend makes, with the same names and argument orders as
TensorRT 10/11 and pycuda, and record what they were asked to do. The "engine" computes
``1 − x`` on its input, so results can be checked exactly. Device memory is a dict of byte arrays
keyed by fake addresses.
"""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import numpy as np
import pytest

ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"


class FakeTRT(types.ModuleType):
    def __init__(self, strongly_typed: bool = True) -> None:
        super().__init__("tensorrt")
        self.__version__ = "10.99.0-fake"
        self.log: list[tuple[Any, ...]] = []
        mod = self

        class Logger:
            WARNING = 2

            def __init__(self, level: int) -> None:
                self.level = level

        class NetworkDefinitionCreationFlag:
            pass

        if strongly_typed:
            NetworkDefinitionCreationFlag.STRONGLY_TYPED = 5  # type: ignore[attr-defined]

        class TensorIOMode:
            INPUT = "INPUT"
            OUTPUT = "OUTPUT"

        class OptProfile:
            def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
                mod.log.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))
                self.shape = (name, tuple(lo), tuple(opt), tuple(hi))

        class Config:
            def add_optimization_profile(self, p: OptProfile) -> int:
                self.profile = p
                return 0

        class Builder:
            def __init__(self, logger: Logger) -> None:
                pass

            def create_network(self, flags: int) -> dict[str, Any]:
                mod.log.append(("create_network", flags))
                return {"flags": flags}

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> OptProfile:
                return OptProfile()

            def build_serialized_network(self, network: Any, config: Config) -> bytes | None:
                mod.log.append(("build",))
                if mod.fail_build:
                    return None
                return ENGINE_MAGIC + json.dumps(config.profile.shape).encode()

        class OnnxParser:
            def __init__(self, network: Any, logger: Logger) -> None:
                self.num_errors = 0

            def parse(self, data: bytes) -> bool:
                mod.log.append(("parse", len(data)))
                # an ONNX ModelProto starts with field 1 (ir_version, a varint): byte 0x08
                if not data.startswith(b"\x08"):
                    self.num_errors = 1
                    return False
                return True

            def get_error(self, i: int) -> str:
                return "fake parse error: not an ONNX model"

        class Context:
            def __init__(self) -> None:
                self.addresses: dict[str, int] = {}
                self.shape: tuple[int, ...] = ()

            def set_tensor_address(self, name: str, addr: int) -> bool:
                self.addresses[name] = addr
                return True

            def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
                assert name == "image"
                self.shape = tuple(shape)
                return True

            def get_tensor_shape(self, name: str) -> tuple[int, ...]:
                return self.shape

            def execute_async_v3(self, stream_handle: int) -> bool:
                mod.log.append(("execute", self.shape, stream_handle))
                vol = int(np.prod(self.shape))
                src = FakeCuda.memory[self.addresses["image"]].view(np.float32)[:vol]
                dst = FakeCuda.memory[self.addresses["probability"]].view(np.float32)
                dst[:vol] = 1.0 - src
                return True

        class Engine:
            num_io_tensors = 2

            def get_tensor_name(self, i: int) -> str:
                return ["image", "probability"][i]

            def get_tensor_mode(self, name: str) -> str:
                return "INPUT" if name == "image" else "OUTPUT"

            def get_tensor_dtype(self, name: str) -> str:
                return "float32"

            def create_execution_context(self) -> Context:
                return Context()

        class Runtime:
            def __init__(self, logger: Logger) -> None:
                pass

            def deserialize_cuda_engine(self, blob: bytes) -> Engine | None:
                mod.log.append(("deserialize", len(blob)))
                return Engine() if bytes(blob).startswith(ENGINE_MAGIC) else None

        self.fail_build = False
        self.Logger = Logger
        self.NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag
        self.TensorIOMode = TensorIOMode
        self.Builder = Builder
        self.OnnxParser = OnnxParser
        self.Runtime = Runtime
        self.nptype = lambda dt: np.dtype(dt).type


class FakeCuda(types.ModuleType):
    memory: dict[int, np.ndarray] = {}

    def __init__(self, devices: int = 1) -> None:
        super().__init__("pycuda.driver")
        self.devices = devices
        self.copies: list[str] = []
        mod = self

        class Ctx:
            def push(self) -> None:
                mod.copies.append("push")

        class Device:
            def __init__(self, i: int) -> None:
                self.i = i

            @staticmethod
            def count() -> int:
                return mod.devices

            def name(self) -> str:
                return "Fake GPU 80GB HBM3"

            def retain_primary_context(self) -> Ctx:
                return Ctx()

        class Context:
            @staticmethod
            def pop() -> None:
                mod.copies.append("pop")

        class Allocation:
            def __init__(self, nbytes: int) -> None:
                self.addr = 0x1000 + len(FakeCuda.memory) * 0x100000
                FakeCuda.memory[self.addr] = np.zeros(nbytes, np.uint8)

            def __int__(self) -> int:
                return self.addr

        class Stream:
            handle = 0xBEEF

            def synchronize(self) -> None:
                mod.copies.append("sync")

        self.Device = Device
        self.Context = Context
        self.Stream = Stream
        self.mem_alloc = Allocation
        self.pinned: list[np.ndarray] = []

    def init(self) -> None:
        pass

    def pagelocked_empty(self, n: int, dtype: Any) -> np.ndarray:
        a = np.empty(n, dtype)
        self.pinned.append(a)
        return a

    def memcpy_htod_async(self, dev: Any, host: np.ndarray, stream: Any) -> None:
        assert any(np.shares_memory(host, p) for p in self.pinned), "host buffer is not pinned"
        self.copies.append("htod")
        FakeCuda.memory[int(dev)][: host.nbytes] = host.view(np.uint8)

    def memcpy_dtoh_async(self, host: np.ndarray, dev: Any, stream: Any) -> None:
        assert any(np.shares_memory(host, p) for p in self.pinned), "host buffer is not pinned"
        self.copies.append("dtoh")
        host.view(np.uint8)[:] = FakeCuda.memory[int(dev)][: host.nbytes]


def install(
    monkeypatch: pytest.MonkeyPatch, devices: int = 1, strongly_typed: bool = True
) -> tuple[FakeTRT, FakeCuda]:
    """Put the fakes into ``sys.modules`` for the duration of a test."""
    trt, cuda = FakeTRT(strongly_typed), FakeCuda(devices)
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = cuda  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    return trt, cuda
