"""Segmentation networks in plain torch (no torchvision): a compact U-Net and DeepLabv3+.

Both take ``[N, 1, H, W]`` float32 images (the output of
:class:`antema_fast._preprocess.Preprocessing`) and return ``[N, 1, H, W]`` logits. ``H`` and
``W`` must be multiples of the model's ``pad_multiple``; the inference pipeline pads to it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Double(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_cbr(cin, cout), _cbr(cout, cout))


class _IdentityStartBlock(nn.Module):
    """``relu(x + body(x))`` where ``body`` is a conv + BN + ReLU (``width`` channels out,
    ``kernel``×``kernel``) then a ``kernel``×``kernel`` convolution back to ``channels`` and a
    batch norm whose scale starts at zero: a new block is the identity, so blocks added to a
    trained network (``init_from``) leave its output unchanged until they learn."""

    def __init__(self, channels: int, width: int, kernel: int) -> None:
        super().__init__()
        last = nn.BatchNorm2d(channels)
        nn.init.zeros_(last.weight)
        self.body = nn.Sequential(
            _cbr(channels, width),
            nn.Conv2d(width, channels, kernel, padding=kernel // 2, bias=False),
            last,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class _FullResBlock(_IdentityStartBlock):
    """Residual block for the full-resolution stage: 3×3 expansion, ReLU, 1×1 projection."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__(channels, width, kernel=1)


class _ContextBlock(_IdentityStartBlock):
    """Residual block for a coarse decoder level: two 3×3 convolutions at the level's width."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, kernel=3)


class CompactUNet(nn.Module):
    """U-Net that works at half resolution behind a stride-2 stem, with a full-res refinement.

    The preprocessing already blurs the micrograph, so the encoder–decoder runs on a 2× coarser
    grid (4× fewer operations); a thin full-resolution branch restores sharp boundaries for
    small particles. Widths double at each of ``depth`` downsamplings.

    Parameters
    ----------
    base : int
        Channels of the first half-resolution level.
    depth : int
        Downsamplings inside the half-resolution U-Net (``pad_multiple = 2**(depth+1)``).
    full_res_channels : int
        Channels of the full-resolution branch.
    refine_blocks : int
        Residual blocks (:class:`_FullResBlock`) after the full-resolution refinement: more
        capacity where the boundary is decided, at ``refine_width`` channels inside.
    refine_width : int
        Expansion width of those blocks.
    context_blocks : int
        Residual blocks (:class:`_ContextBlock`) after each decoder level but the finest
        (1/4 to 1/16 resolution for ``depth=4``): capacity where a particle is told from
        support texture, at a few per cent of the operations.
    """

    #: Module prefixes whose blocks start as the identity: a trained network without them
    #: loads into one with them (``antema train --init-from``) and computes the same function.
    identity_start = ("post.", "context.")

    def __init__(
        self,
        base: int = 16,
        depth: int = 4,
        full_res_channels: int = 8,
        refine_blocks: int = 0,
        refine_width: int = 32,
        context_blocks: int = 0,
    ) -> None:
        super().__init__()
        self.pad_multiple = 2 ** (depth + 1)
        f = full_res_channels
        self.full = _cbr(1, f)
        self.stem = nn.Sequential(_cbr(f, base, stride=2), _cbr(base, base))
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(_Double(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            _Double(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))
        )
        # one (possibly empty) sequence per decoder level, in the order of ``self.up``
        self.context = nn.ModuleList(
            nn.Sequential(*(_ContextBlock(widths[i]) for _ in range(context_blocks if i else 0)))
            for i in reversed(range(depth))
        )
        self.refine = _cbr(base + f, f)
        self.post = nn.Sequential(*(_FullResBlock(f, refine_width) for _ in range(refine_blocks)))
        self.head = nn.Conv2d(f, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0 = self.full(x)
        h = self.stem(f0)
        skips = [h]
        for blk in self.down:
            h = blk(F.max_pool2d(h, 2))
            skips.append(h)
        skips.pop()
        for blk, ctx in zip(self.up, self.context, strict=True):
            s = skips.pop()
            h = F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False)
            h = ctx(blk(torch.cat([h, s], dim=1)))
        h = F.interpolate(h, size=f0.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.post(self.refine(torch.cat([h, f0], dim=1))))


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)), inplace=True)
        y = self.b2(self.c2(y))
        return F.relu(y + self.short(x), inplace=True)


class DeepLabV3Plus(nn.Module):
    """DeepLabv3+ with a ResNet-18 encoder (output stride 16), as in ANTEMA's paper.

    ResNet-18 layers 1–3 as usual, layer 4 dilated (rate 2) instead of strided; ASPP with rates
    6, 12, 18 and image pooling; decoder fusing 48 channels of layer-1 features at stride 4.
    Randomly initialised (no pretrained weights are downloaded).
    """

    pad_multiple = 16
    identity_start: tuple[str, ...] = ()

    def __init__(self, aspp_channels: int = 128) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        self.layer1 = nn.Sequential(_Basic(64, 64), _Basic(64, 64))
        self.layer2 = nn.Sequential(_Basic(64, 128, 2), _Basic(128, 128))
        self.layer3 = nn.Sequential(_Basic(128, 256, 2), _Basic(256, 256))
        self.layer4 = nn.Sequential(_Basic(256, 512, 1, 2), _Basic(512, 512, 1, 2))
        a = aspp_channels
        self.aspp = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(512, a, 1, bias=False), nn.BatchNorm2d(a), nn.ReLU(True))]
            + [_cbr(512, a, dilation=r) for r in (6, 12, 18)]
        )
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(512, a, 1), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(
            nn.Conv2d(5 * a, a, 1, bias=False), nn.BatchNorm2d(a), nn.ReLU(inplace=True)
        )
        self.low = nn.Sequential(
            nn.Conv2d(64, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(inplace=True)
        )
        self.decoder = nn.Sequential(_cbr(a + 48, a), _cbr(a, a), nn.Conv2d(a, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        low = self.layer1(self.stem(x))
        h = self.layer4(self.layer3(self.layer2(low)))
        feats = [m(h) for m in self.aspp]
        pooled = self.pool(h).expand(-1, -1, h.shape[-2], h.shape[-1])
        h = self.project(torch.cat([*feats, pooled], dim=1))
        h = F.interpolate(h, size=low.shape[-2:], mode="bilinear", align_corners=False)
        h = self.decoder(torch.cat([h, self.low(low)], dim=1))
        return F.interpolate(h, size=size, mode="bilinear", align_corners=False)


MODELS: dict[str, type[nn.Module]] = {"unet": CompactUNet, "deeplabv3plus": DeepLabV3Plus}


def build_model(name: str = "unet", **kwargs: Any) -> nn.Module:
    """A model by name: ``"unet"`` (default, compact) or ``"deeplabv3plus"`` (ResNet-18)."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"model name: expected one of {sorted(MODELS)}, got {name!r}") from None
    return cls(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class WithSigmoid(nn.Module):
    """Wraps a logits model so the exported graph outputs probabilities."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x))
