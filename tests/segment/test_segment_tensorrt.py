"""TensorRT path on the CPU: cache keys and invalidation, profiles, and the build/run calls
checked against in-memory stand-ins of ``tensorrt`` and ``pycuda`` (see ``fake_tensorrt``)."""

from __future__ import annotations

import json
from pathlib import Path

import fake_tensorrt
import numpy as np
import pytest
from antema_fast import Settings
from antema_fast._preprocess import Preprocessing
from antema_fast.cli import main
from antema_fast.segment import Segmenter, load_model_info
from antema_fast.segment._tensorrt import (
    ENGINE_CACHE_ENV,
    EngineCache,
    Profile,
    build_serialized_engine,
    choose_profile,
    engine_cache_dir,
    engine_key,
    network_shape,
    parse_sizes,
)
from segment_helpers import discs

P1 = Profile((1, 1, 256, 256), (4, 1, 2048, 2048), (4, 1, 2048, 2048))
P2 = Profile((1, 1, 256, 256), (2, 1, 1024, 1024), (2, 1, 2048, 2048))


def test_engine_key_changes_with_every_field() -> None:
    base = engine_key("a" * 64, "10.12.0", "NVIDIA H100 80GB HBM3", P1)
    assert base == engine_key("a" * 64, "10.12.0", "NVIDIA H100 80GB HBM3", P1)  # stable
    others = {
        engine_key("b" * 64, "10.12.0", "NVIDIA H100 80GB HBM3", P1),  # model changed
        engine_key("a" * 64, "11.4.0", "NVIDIA H100 80GB HBM3", P1),  # TensorRT upgraded
        engine_key("a" * 64, "10.12.0", "NVIDIA H200", P1),  # other GPU
        engine_key("a" * 64, "10.12.0", "NVIDIA H100 80GB HBM3", P2),  # other profile
    }
    assert base not in others and len(others) == 4


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENGINE_CACHE_ENV, str(tmp_path / "engines"))
    assert engine_cache_dir() == tmp_path / "engines"
    assert EngineCache().directory == tmp_path / "engines"
    monkeypatch.delenv(ENGINE_CACHE_ENV)
    assert engine_cache_dir() == Path.home() / ".cache" / "antema_fast" / "engines"


def test_cache_builds_once_and_invalidates(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return b"engine-%d" % len(builds)

    f1 = cache.fields("a" * 64, "10.12.0", "GPU", P1)
    blob, built = cache.get_or_build("antema-unet", f1, build)
    assert (blob, built) == (b"engine-1", True)
    assert cache.get_or_build("antema-unet", f1, build) == (b"engine-1", False)
    assert len(builds) == 1
    path = cache.path("antema-unet", f1["key"])
    assert path.is_file() and json.loads(path.with_suffix(".json").read_text()) == f1
    # a new TensorRT version is a new key: rebuilt beside the old engine
    f2 = cache.fields("a" * 64, "11.4.0", "GPU", P1)
    assert cache.get_or_build("antema-unet", f2, build) == (b"engine-2", True)
    assert cache.path("antema-unet", f2["key"]) != path
    # a sidecar that disagrees (or is missing) makes the engine stale
    path.with_suffix(".json").write_text(json.dumps({**f1, "gpu": "other"}))
    assert cache.get_or_build("antema-unet", f1, build) == (b"engine-3", True)
    path.with_suffix(".json").unlink()
    assert cache.lookup("antema-unet", f1) is None
    cache.store("antema-unet", f1, b"x")
    cache.invalidate("antema-unet", f1)
    assert not path.exists() and not path.with_suffix(".json").exists()
    assert not list(tmp_path.glob("*.tmp*"))  # atomic writes leave no temporaries


def test_profile_choice() -> None:
    p = choose_profile([(1000, 1000), (2048, 2048), (1000, 1000)], 4, 32, 2048)
    assert p == Profile((1, 1, 1024, 1024), (4, 1, 1024, 1024), (4, 1, 2048, 2048))
    # frames larger than the tile size run as tiles: the profile holds the tile shape
    assert choose_profile([(4096, 4096)], 2, 32, 2048).max == (2, 1, 2048, 2048)
    assert network_shape((4096, 1000), 32, 2048) == (2048, 1024)
    assert network_shape((333, 517), 16, 2048) == (336, 528)
    p = choose_profile([(512, 2048), (2048, 512)], 1, 32, 2048)
    assert p.min == (1, 1, 512, 512) and p.max == (1, 1, 2048, 2048)
    assert p.covers((1, 1, 512, 2048)) and not p.covers((2, 1, 512, 512))
    assert not p.covers((1, 1, 4096, 512)) and not p.covers((1, 512, 512))
    with pytest.raises(ValueError, match="at least one frame size"):
        choose_profile([], 1, 32, 2048)
    with pytest.raises(ValueError, match="batch"):
        choose_profile([(64, 64)], 0, 32, 2048)
    with pytest.raises(ValueError, match="min ≤ opt"):
        Profile((1, 1, 512, 512), (1, 1, 256, 256), (1, 1, 512, 512))


def test_parse_sizes() -> None:
    assert parse_sizes("1024x1024,2048x2048") == [(1024, 1024), (2048, 2048)]
    assert parse_sizes(" 333X517 ,") == [(333, 517)]
    for bad in ("", "1024", "0x5", "axb"):
        with pytest.raises(ValueError):
            parse_sizes(bad)


# -- build and run against the stand-ins ------------------------------------------------------


@pytest.mark.parametrize("strongly_typed", [True, False])
def test_build_is_strongly_typed_with_one_profile(
    monkeypatch: pytest.MonkeyPatch, test_model: Path, strongly_typed: bool
) -> None:
    trt, _ = fake_tensorrt.install(monkeypatch, strongly_typed=strongly_typed)
    blob = build_serialized_engine(trt, test_model, P2)
    assert blob.startswith(fake_tensorrt.ENGINE_MAGIC)
    (flags,) = [e[1] for e in trt.log if e[0] == "create_network"]
    assert flags == ((1 << 5) if strongly_typed else 0)  # never weak-typing flags
    assert ("set_shape", "image", P2.min, P2.opt, P2.max) in trt.log


def test_build_errors_are_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, test_model: Path
) -> None:
    trt, _ = fake_tensorrt.install(monkeypatch)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="could not parse .*junk.onnx.*fake parse error"):
        build_serialized_engine(trt, junk, P1)
    trt.fail_build = True
    with pytest.raises(RuntimeError, match="failed to build an engine"):
        build_serialized_engine(trt, test_model, P1)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(ENGINE_CACHE_ENV, str(tmp_path / "engines"))
    return fake_tensorrt.install(monkeypatch)


def test_segmenter_runs_the_engine_through_pinned_buffers(fake_gpu, test_model: Path) -> None:
    trt, cuda = fake_gpu
    seg = Segmenter(
        Settings(tile_size=1024),
        backend="auto",
        model=test_model,
        engine_sizes=[(256, 256), (1024, 1024)],
        engine_batch=2,
    )
    assert seg.backend_name == "tensorrt" and not seg.fallbacks
    info = seg.info()["engine"]
    assert info["gpu"] == "Fake GPU 80GB HBM3" and info["tensorrt_version"] == "10.99.0-fake"
    assert Path(info["engine_file"]).is_file()
    img, _ = discs((500, 700), 1)
    out = seg.segment(img)
    # the stand-in engine returns 1 - x, so the probability is 1 - preprocessed image
    expected = 1.0 - Preprocessing().apply(img)
    np.testing.assert_allclose(out.probability, expected, atol=1e-6)
    assert out.backend == "tensorrt" and out.mask.shape == img.shape
    executed = [e for e in trt.log if e[0] == "execute"]
    assert executed == [("execute", (1, 1, 512, 704), 0xBEEF)]
    assert cuda.copies[-5:] == ["push", "htod", "dtoh", "sync", "pop"]
    # small frames are padded up to the profile minimum; batches respect the profile maximum
    trt.log.clear()
    seg.segment_batch([discs((100, 90), s, radius=(4.0, 8.0))[0] for s in range(3)])
    shapes = [e[1] for e in trt.log if e[0] == "execute"]
    assert shapes == [(2, 1, 256, 256), (1, 1, 256, 256)]
    # a 2048² frame is cut into 1024² tiles that fit the profile
    trt.log.clear()
    big = seg.segment(discs((2048, 2048), 2)[0])
    assert big.extra["tiles"] > 1
    assert {e[1][2:] for e in trt.log if e[0] == "execute"} == {(1024, 1024)}


def test_segment_scale_shrinks_the_engine_profile_and_the_frames(
    fake_gpu, test_model: Path
) -> None:
    trt, _ = fake_gpu
    seg = Segmenter(
        Settings(segment_scale=0.5),
        backend="tensorrt",
        model=test_model,
        engine_sizes=[(1024, 1024)],
    )
    img, _ = discs((1024, 1024), 3)
    out = seg.segment(img)
    assert out.mask.shape == (1024, 1024) and out.extra["resampled_shape"] == (512, 512)
    assert [e[1] for e in trt.log if e[0] == "execute"] == [(1, 1, 512, 512)]
    assert seg.info()["segment_scale"] == 0.5


def test_engine_is_reused_from_the_cache(fake_gpu, test_model: Path) -> None:
    trt, _ = fake_gpu
    first = Segmenter(backend="tensorrt", model=test_model)
    assert first._engine.built
    n_builds = sum(e[0] == "build" for e in trt.log)
    second = Segmenter(backend="tensorrt", model=test_model)
    assert not second._engine.built
    assert sum(e[0] == "build" for e in trt.log) == n_builds
    assert first._engine.engine_path == second._engine.engine_path
    # an engine the runtime refuses (e.g. corrupt) is rebuilt
    first._engine.engine_path.write_bytes(b"corrupt")
    third = Segmenter(backend="tensorrt", model=test_model)
    assert third._engine.built and sum(e[0] == "build" for e in trt.log) == n_builds + 1


def test_engine_is_built_from_the_fp16_graph(fake_gpu, test_model: Path) -> None:
    pytest.importorskip("onnxconverter_common")
    seg = Segmenter(backend="tensorrt", model=test_model)
    graph = Path(seg.info()["engine"]["onnx_graph"])
    assert graph.name.endswith(".fp16.onnx") and graph != test_model
    sidecar = json.loads(seg._engine.engine_path.with_suffix(".json").read_text())
    assert sidecar["model_sha256"] != load_model_info(test_model).sha256  # keyed by the FP16 graph
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(graph))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # IO kept FP32
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)


def test_shapes_outside_the_profile_are_refused(fake_gpu, test_model: Path) -> None:
    seg = Segmenter(backend="tensorrt", model=test_model)
    with pytest.raises(ValueError, match="outside the engine's profile"):
        seg._engine.run(np.zeros((1, 1, 4096, 4096), np.float32))


def test_cli_engine_build_with_stand_ins(
    fake_gpu, test_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["engine", "build", "--model", str(test_model), "--sizes", "1024x1024", "--batch", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("built: ") and "1x1x1024x1024-2x1x1024x1024-2x1x1024x1024" in out
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("cached: ")
    assert main(["engine", "build", "--model", "no-such-model"]) == 1
    assert "shipped models" in capsys.readouterr().err
