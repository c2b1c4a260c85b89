"""Synergistic Multi-Attention (SMA): pixel, channel and spatial attention combined.

All modules take and return feature maps of shape ``[B, C, H, W]``.
"""
from __future__ import annotations

import torch
from torch import nn

from nnunetv2_smaformer.network.checkpoint_compat import FoldsLegacyConvBias


class PixelAttention(nn.Module):
    """Per-pixel, per-channel gate: ``x * sigmoid(Conv1x1(x))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.gate(x))


class ChannelAttention(nn.Module):
    """CBAM channel gate: a shared bottleneck MLP on the average- and max-pooled descriptors.

    Args:
        dim: Channels ``C``.
        reduction: Channel reduction; the bottleneck width is ``max(C // reduction, min_hidden)``.
        min_hidden: Lower bound of the bottleneck width, so narrow stages keep a usable MLP.
    """

    def __init__(self, dim: int, reduction: int = 16, min_hidden: int = 8) -> None:
        super().__init__()
        hidden = max(dim // reduction, min_hidden)
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, hidden, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, dim, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Both descriptors go through the MLP in one batched call: [2B, C, 1, 1].
        pooled = torch.cat((x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)), dim=0)
        avg_logit, max_logit = self.mlp(pooled).chunk(2, dim=0)
        return x * torch.sigmoid(avg_logit + max_logit)


class SpatialAttention(nn.Module):
    """CBAM spatial gate: a 7x7 conv over the channel mean and channel max, ``[B, 2, H, W] -> [B, 1, H, W]``."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        descriptor = torch.cat((x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.conv(descriptor))


class SMA(FoldsLegacyConvBias, nn.Module):
    """Synergistic Multi-Attention on ``[B, C, H, W]``.

    ``P = PixelAttention(x)``, ``Ch = ChannelAttention(x)``, ``S = Conv1x1(P * Ch)``,
    ``Sp = SpatialAttention(S)``, output ``BN(Conv1x1(Sp)) (+ x)``.

    Args:
        dim: Channels ``C``.
        residual: Add the input to the output. The decoder's transformer blocks use the
            attention without it because they add their own (drop-path) residual.
    """

    conv_bn_pairs = (("proj", "norm"),)

    def __init__(self, dim: int, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        self.pixel = PixelAttention(dim)
        self.channel = ChannelAttention(dim)
        self.synergy = nn.Conv2d(dim, dim, kernel_size=1)
        self.spatial = SpatialAttention()
        self.proj = nn.Conv2d(dim, dim, kernel_size=1, bias=False)  # BN follows: a bias would cancel
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.synergy(self.pixel(x) * self.channel(x))
        out = self.norm(self.proj(self.spatial(out)))
        return out + x if self.residual else out
