"""ONNX export: probability output (sigmoid in the graph), dynamic batch/height/width, the
preprocessing recipe and training summary in the metadata, and an FP16 sibling."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
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
from .models import WithSigmoid

OPSET = 17


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    preprocessing: Preprocessing,
    pad_multiple: int,
    name: str = "antema-unet",
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    threshold: float = 0.5,
    pixel_size_nm: float | None = None,
    fp16: bool = True,
) -> Path:
    """Write ``path`` (FP32) and, with ``fp16``, ``<stem>.fp16.onnx`` beside it.

    The graph has input ``image`` ``[N, 1, H, W]`` float32 and output ``probability``
    ``[N, 1, H, W]`` float32 with dynamic N, H, W; H and W must be multiples of
    ``pad_multiple``. Metadata keys are those of :mod:`antema_fast._preprocess`.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = WithSigmoid(copy.deepcopy(model).to("cpu")).eval()  # trained on a GPU too
    dummy = torch.zeros(1, 1, 2 * pad_multiple, 2 * pad_multiple)
    tmp = path.with_suffix(".tmp.onnx")
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo, which needs packages we
        # do not depend on; it is still the one that exports these graphs offline and exactly
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (dummy,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    m = onnx.load(str(tmp))
    tmp.unlink()
    meta = {
        META_NAME: name,
        META_VERSION: __version__,
        META_PREPROCESSING: preprocessing.to_json(),
        META_PAD_MULTIPLE: str(int(pad_multiple)),
        META_PIXEL_SIZE_NM: "null" if pixel_size_nm is None else repr(float(pixel_size_nm)),
        META_METRICS: json.dumps(metrics or {}, sort_keys=True),
        META_TRAINING: json.dumps(training or {}, sort_keys=True),
        META_THRESHOLD: repr(float(threshold)),
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "antema_fast"
    m.producer_version = __version__
    onnx.checker.check_model(m)
    out_tmp = path.with_suffix(".part")
    onnx.save(m, str(out_tmp))
    out_tmp.replace(path)
    if fp16:
        import warnings

        try:
            from onnxconverter_common import float16
        except ImportError:  # e.g. a GPU machine's own Python: the FP32 model is what counts
            warnings.warn(
                f"{path}: onnxconverter-common is not installed, so no FP16 sibling was written "
                "(antema_fast.train.card.release writes one when the model is released)",
                UserWarning,
                stacklevel=2,
            )
            return path

        with warnings.catch_warnings():  # "float32 number … truncated": tiny weights → 1e-7
            warnings.simplefilter("ignore", UserWarning)
            m16 = float16.convert_float_to_float16(m, keep_io_types=True)
        p16 = path.with_name(path.stem + ".fp16.onnx")
        part = p16.with_suffix(".part")
        onnx.save(m16, str(part))
        part.replace(p16)
    return path


def onnx_matches_torch(
    model: nn.Module, path: str | Path, x: np.ndarray, atol: float = 1e-4
) -> float:
    """Max |ORT − torch| of the probabilities on ``x`` (raises if above ``atol``)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})[0]
    with torch.no_grad():
        net = WithSigmoid(copy.deepcopy(model).to("cpu")).eval()
        ref = net(torch.from_numpy(x.astype(np.float32))).numpy()
    err = float(np.abs(got - ref).max())
    if err > atol:
        raise AssertionError(f"{path}: ONNX Runtime differs from torch by {err:.3g} > {atol}")
    return err


def _buffer(t: torch.Tensor | None) -> torch.Tensor:
    """A batch norm's running statistic (every batch norm of these models tracks them)."""
    if t is None:
        raise ValueError("a batch norm without running statistics cannot take a folded weight")
    return t


def _conv_bn_pairs(model: nn.Module) -> dict[str, tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Every ``Conv2d`` by its module path, with the ``BatchNorm2d`` registered right after it
    (the one the exporter folds into it) or None."""
    mods = list(model.named_modules())
    out: dict[str, tuple[nn.Conv2d, nn.BatchNorm2d | None]] = {}
    for i, (name, m) in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            nxt = mods[i + 1][1] if i + 1 < len(mods) else None
            bn = (
                nxt
                if isinstance(nxt, nn.BatchNorm2d) and nxt.num_features == m.out_channels
                else None
            )
            out[name] = (m, bn)
    return out


def _module_path(node_name: str) -> str:
    """``/model/post/post.0/body/body.0/body.0.0/Conv`` → ``post.0.body.0.0``: the exporter's
    scopes name a container's children ``<container>.<i>``; ``model`` is :class:`WithSigmoid`."""
    parts = [p for p in node_name.split("/") if p][:-1]
    if parts[:1] == ["model"]:
        parts = parts[1:]
    path, last = "", ""
    for comp in parts:
        if last and comp.startswith(last + "."):
            path += comp[len(last) :]
        else:
            path = f"{path}.{comp}" if path else comp
        last = comp
    return path


def import_onnx_weights(
    model: nn.Module,
    path: str | Path,
    calibration: Iterable[np.ndarray] = (),
    new_ok: tuple[str, ...] = (),
) -> int:
    """Load the weights of an ONNX file written by :func:`export_onnx` into ``model``.

    The exporter folds each batch norm into the convolution before it, so the graph holds one
    weight and bias per convolution. They go back into the convolution (weight) and its batch
    norm, which is set so that in eval mode the model computes exactly the graph's function.
    With ``calibration`` batches (``[N, 1, H, W]`` float32, preprocessed) the batch norms get
    the running mean and variance of their inputs on those batches, with scale and shift set
    to keep the function unchanged: training in train mode then starts where the graph is
    (batch statistics close to the running ones) instead of from normalised activations
    whose folded scale was lost. Without them a batch norm is the identity plus the bias
    (fine for eval mode or frozen batch norms only).

    Convolution nodes are matched to modules by the module path in the node name
    (``/model/<...>/<path>/Conv``, as the TorchScript exporter writes it); every convolution of
    the model must be found once with the same weight shape, except those under the module
    prefixes ``new_ok`` (blocks that start as the identity, added since the file was written:
    they keep their initialisation). Returns the number of convolutions loaded; raises
    ``ValueError`` naming the file when the graph does not fit.
    """
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    graph = onnx.load(str(path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = _conv_bn_pairs(model)
    found: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        key = _module_path(node.name)
        if key not in convs or key in found or node.input[1] not in init:
            raise ValueError(f"{path}: Conv node {node.name!r} matches no convolution of the model")
        w = init[node.input[1]]
        b = init[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        if tuple(w.shape) != tuple(convs[key][0].weight.shape):
            raise ValueError(
                f"{path}: {key}: weight shape {w.shape} in the file, "
                f"{tuple(convs[key][0].weight.shape)} in the model"
            )
        found[key] = (w, b)
    missing = sorted(k for k in set(convs) - set(found) if not k.startswith(new_ok))
    if missing:
        raise ValueError(f"{path}: the graph has no weights for {missing[:5]}")
    convs = {k: v for k, v in convs.items() if k in found}
    with torch.no_grad():
        for key, (conv, bn) in convs.items():
            w, b = found[key]
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            bias = (
                torch.from_numpy(np.array(b)) if b is not None else torch.zeros(conv.out_channels)
            )
            if bn is None:
                if conv.bias is None:
                    if b is not None and np.any(b != 0):
                        raise ValueError(f"{path}: {key} has a bias the model lacks")
                else:
                    conv.bias.copy_(bias)
                continue
            if conv.bias is not None:
                conv.bias.zero_()
            bn.weight.fill_(1.0)
            bn.bias.copy_(bias)
            _buffer(bn.running_mean).zero_()
            _buffer(bn.running_var).fill_(1.0 - bn.eps)
    batches = list(calibration)
    if batches:
        _calibrate_batch_norms(model, convs, batches)
    return len(found)


def _calibrate_batch_norms(
    model: nn.Module,
    convs: dict[str, tuple[nn.Conv2d, nn.BatchNorm2d | None]],
    batches: list[np.ndarray],
) -> None:
    """Running statistics of each folded batch norm's input, function kept (see above)."""
    sums: dict[str, list[torch.Tensor]] = {}
    hooks = []

    def hook(key: str):  # type: ignore[no-untyped-def]
        def f(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            z = inp[0].double()
            zero = torch.zeros(z.shape[1], dtype=torch.float64, device=z.device)
            acc = sums.setdefault(key, [zero] * 3)
            acc[0] = acc[0] + z.sum(dim=(0, 2, 3))
            acc[1] = acc[1] + (z * z).sum(dim=(0, 2, 3))
            acc[2] = acc[2] + z.numel() / z.shape[1]

        return f

    for key, (_, bn) in convs.items():
        if bn is not None:
            hooks.append(bn.register_forward_hook(hook(key)))
    was = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            for x in batches:
                model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    with torch.no_grad():
        for key, (_, bn) in convs.items():
            if bn is None:
                continue
            s, ss, n = sums[key]
            mean = s / n
            var = torch.clamp(ss / n - mean * mean, min=0.0)
            # eval: (z − m)/√(v+ε)·√(v+ε) + (b + m) = z + b, the folded function
            _buffer(bn.running_mean).copy_(mean.float())
            _buffer(bn.running_var).copy_(var.float())
            bn.weight.copy_(torch.sqrt(var + bn.eps).float())
            bn.bias.add_(mean.float())


def average_onnx(
    paths: Iterable[str | Path], out: str | Path, weights: Iterable[float] | None = None
) -> Path:
    """Average the weights of ONNX models of one architecture into ``out`` (a "model soup").

    Meant for models fine-tuned from one start (phases with other seeds or recipes): they lie
    in one basin, and the average of their weights is often a little better than each. Every
    convolution's (batch-norm-folded) weight and bias is averaged, matched by node name; the
    graph and metadata are the first file's, with ``antema.training`` recording the sources
    and weights. Written atomically; no FP16 sibling (``card.release`` writes one).

    Raises
    ------
    ValueError
        If fewer than two files are given, the weights do not fit them, or a file's
        convolutions differ from the first's in names or shapes (another architecture).
    """
    import onnx
    from onnx import numpy_helper

    from .._preprocess import META_TRAINING

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError(f"average_onnx: expected at least two models, got {len(paths)}")
    w = np.full(len(paths), 1.0 / len(paths)) if weights is None else np.asarray(list(weights))
    if w.shape != (len(paths),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights: expected {len(paths)} non-negative numbers summing to 1")

    def conv_weights(m: Any) -> dict[str, list[np.ndarray]]:
        init = {t.name: t for t in m.graph.initializer}
        return {
            n.name: [numpy_helper.to_array(init[i]) for i in n.input[1:] if i]
            for n in m.graph.node
            if n.op_type == "Conv"
        }

    models = [onnx.load(str(p)) for p in paths]
    convs = [conv_weights(m) for m in models]
    for p, c in zip(paths[1:], convs[1:], strict=True):
        same = c.keys() == convs[0].keys() and all(
            [a.shape for a in c[k]] == [a.shape for a in convs[0][k]] for k in c
        )
        if not same:
            raise ValueError(f"{p}: its convolutions differ from those of {paths[0]}")
    first = models[0]
    init = {t.name: t for t in first.graph.initializer}
    for node in first.graph.node:
        if node.op_type != "Conv":
            continue
        for j, name in enumerate(i for i in node.input[1:] if i):
            avg = sum(
                wk * c[node.name][j].astype(np.float64) for wk, c in zip(w, convs, strict=True)
            )
            init[name].CopyFrom(numpy_helper.from_array(np.asarray(avg, np.float32), name))
    record = {
        "weight_average": [
            {"model": str(p), "weight": float(x)} for p, x in zip(paths, w, strict=True)
        ]
    }
    for prop in first.metadata_props:
        if prop.key == META_TRAINING:
            record["first"] = json.loads(prop.value or "{}")
            prop.value = json.dumps(record, sort_keys=True)
    onnx.checker.check_model(first)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part")
    onnx.save(first, str(part))
    part.replace(out)
    return out
