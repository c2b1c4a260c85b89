"""SMA/E-MLP decoder, final x4 upsampling, edge-enhancement head and deep-supervision heads."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from nnunetv2_smaformer.network.attention import SMA
from nnunetv2_smaformer.network.checkpoint_compat import FoldsLegacyConvBias

#: SMA transformer blocks in each decoder stage, as in the original.
DECODER_BLOCKS_PER_STAGE = 2


class SegmentationLayer(nn.Module):
    """1x1 conv from features to class logits: ``[B, C, H, W] -> [B, num_classes, H, W]``.

    The conv is registered as ``seg_layers``, nnU-Net's name for the layers that output logits: nnU-Net's
    ``-pretrained_weights`` loader skips keys containing ``.seg_layers.``, so fine-tuning on another label
    set re-initialises these and transfers everything else. Checkpoints written before the conv had this
    name (``<prefix>.weight`` / ``<prefix>.bias``) still load: the keys are renamed on loading.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.seg_layers = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seg_layers(x)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # Torch hands the children the same dict afterwards, so renaming here reaches the conv.
        for name in ("weight", "bias"):
            old, new = f"{prefix}{name}", f"{prefix}seg_layers.{name}"
            if old in state_dict and new not in state_dict:
                state_dict[new] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class EMLP(nn.Module):
    """Enhanced MLP: ``Linear C->rC, GELU, depthwise 3x3, pointwise 1x1, GELU, Linear rC->C``.

    The depthwise/pointwise pair gives the token MLP local spatial context.
    Shapes: ``[B, H, W, C] -> [B, H, W, C]`` (tokens kept channels-last).
    """

    def __init__(self, dim: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        hidden = dim * mlp_ratio
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, groups=hidden)
        self.pwconv = nn.Conv2d(hidden, hidden, kernel_size=1)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.fc1(x)).permute(0, 3, 1, 2)
        x = self.act(self.pwconv(self.dwconv(x))).permute(0, 2, 3, 1)
        return self.fc2(x)


class SMATransformerBlock(nn.Module):
    """Pre-norm transformer block with SMA as token mixer and E-MLP as channel mixer.

    ``X' = X + DropPath(SMA(LN(X)))``, ``X'' = X' + DropPath(EMLP(LN(X')))``.
    Shapes: ``[B, H, W, C] -> [B, H, W, C]``.
    """

    def __init__(self, dim: int, mlp_ratio: int = 4, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SMA(dim, residual=False)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = EMLP(dim, mlp_ratio)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.attn(self.norm1(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = x + self.drop_path1(attn)
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class DecoderStage(FoldsLegacyConvBias, nn.Module):
    """x2 transposed-conv upsampling, skip fusion, SMA transformer blocks, LayerNorm.

    Shapes: ``x [B, C_in, H, W]``, ``skip [B, C_out, 2H, 2W]`` -> ``[B, C_out, 2H, 2W]``.
    """

    conv_bn_pairs = (("fuse.0", "fuse.1"),)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int = 2,
        drop_path: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        rates = [drop_path] * depth if isinstance(drop_path, (int, float)) else list(drop_path)
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * out_channels, out_channels, kernel_size=1, bias=False),  # BN follows
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*(SMATransformerBlock(out_channels, drop_path=r) for r in rates))
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.fuse(torch.cat((self.up(x), skip), dim=1)).permute(0, 2, 3, 1)
        return self.norm(self.blocks(x)).permute(0, 3, 1, 2)


class FinalUpsampling(FoldsLegacyConvBias, nn.Module):
    """x4 transposed conv + BN + ReLU back to input resolution: ``[B, C, H/4, W/4] -> [B, C, H, W]``."""

    conv_bn_pairs = (("up", "norm"),)

    def __init__(self, channels: int, scale: int = 4) -> None:
        super().__init__()
        # No bias: BatchNorm follows and removes any per-channel constant.
        self.up = nn.ConvTranspose2d(channels, channels, kernel_size=scale, stride=scale, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.up(x)))


def sobel_kernels() -> torch.Tensor:
    """The two 3x3 Sobel kernels, ``[2, 3, 3]`` (d/dx, d/dy)."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    return torch.stack((gx, gx.t()))


class EdgeEnhancementHead(FoldsLegacyConvBias, nn.Module):
    """Segmentation head that sees the features together with their Sobel edge responses.

    Depthwise Sobel-x/Sobel-y filters (learnable, initialised to Sobel) give ``2C`` edge maps;
    ``[features, edges]`` (``3C``) is fused back to ``C`` by 1x1 conv + BN + ReLU, then a 1x1
    conv gives the logits. Shapes: ``[B, C, H, W] -> [B, num_classes, H, W]``.

    ``edge`` and ``fuse.0`` hold the weights under their checkpoint names, but ``forward`` applies them
    itself (see there), so hooks on those two modules do not fire.
    """

    conv_bn_pairs = (("fuse.0", "fuse.1"),)

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.edge = nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1, groups=channels, bias=False)
        with torch.no_grad():
            # Output channel 2c filters input channel c with Sobel-x, 2c+1 with Sobel-y.
            self.edge.weight.copy_(sobel_kernels().repeat(channels, 1, 1).unsqueeze(1))
        self.fuse = nn.Sequential(
            nn.Conv2d(3 * channels, channels, kernel_size=1, bias=False),  # BN follows
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.classifier = SegmentationLayer(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fuse(cat(x, edges)) computed as W_x x + W_sx sobel_x(x) + W_sy sobel_y(x): the same 1x1 conv
        # without materialising the 3C-channel concatenation at full resolution. The two edge maps come
        # from two depthwise convs (C -> C each) rather than one with two outputs per channel, whose
        # backward takes a slow oneDNN path on CPU (several times the time of both plain ones together).
        conv, norm, act = self.fuse
        channels = x.shape[1]
        mixed = F.conv2d(x, conv.weight[:, :channels])
        for k in range(2):  # edge channel 2c + k filters channel c with Sobel kernel k
            edges = F.conv2d(x, self.edge.weight[k::2], padding=1, groups=channels)
            mixed += F.conv2d(edges, conv.weight[:, channels + k::2])  # in place: conv keeps no output for backward
        return self.classifier(act(norm(mixed)))


class SMAFormerDecoder(nn.Module):
    """Decoder from the four encoder features to logits, with optional deep supervision.

    ``deep_supervision`` is a plain attribute: nnU-Net's trainer flips
    ``network.decoder.deep_supervision`` to switch between training (list of logits at full,
    1/4, 1/8, 1/16 resolution) and inference (full-resolution logits only).

    Args:
        encoder_channels: Channels of F1..F4, e.g. ``(96, 192, 384, 768)``.
        num_classes: Output channels of every head.
        use_edge_enhancement: Sobel edge head; otherwise a plain 1x1 conv.
        deep_supervision: Return the auxiliary outputs as well.
        drop_path_rates: One stochastic-depth rate per SMA transformer block, deepest stage first.
        blocks_per_stage: SMA transformer blocks in each decoder stage; 0 leaves each stage its up-sampling, skip
            fusion and LayerNorm (the ablation without the decoder's SMA blocks).
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        num_classes: int,
        use_edge_enhancement: bool = True,
        deep_supervision: bool = False,
        drop_path_rates: Sequence[float] | None = None,
        blocks_per_stage: int = DECODER_BLOCKS_PER_STAGE,
    ) -> None:
        super().__init__()
        self.deep_supervision = deep_supervision
        channels = list(encoder_channels)
        num_stages = len(channels) - 1
        if blocks_per_stage < 0:
            raise ValueError(f"blocks_per_stage must be >= 0, got {blocks_per_stage}")
        rates = list(drop_path_rates) if drop_path_rates is not None else [0.0] * (num_stages * blocks_per_stage)
        if len(rates) != num_stages * blocks_per_stage:
            raise ValueError(f"expected {num_stages * blocks_per_stage} drop-path rates, got {len(rates)}")
        self.stages = nn.ModuleList(
            DecoderStage(
                channels[i + 1],
                channels[i],
                depth=blocks_per_stage,
                drop_path=rates[(num_stages - 1 - i) * blocks_per_stage:(num_stages - i) * blocks_per_stage],
            )
            for i in reversed(range(num_stages))
        )
        self.final_up = FinalUpsampling(channels[0])
        self.head = (
            EdgeEnhancementHead(channels[0], num_classes)
            if use_edge_enhancement
            else SegmentationLayer(channels[0], num_classes)
        )
        # Auxiliary heads at strides 4, 8, 16 (the decoder stage outputs, shallowest first).
        self.ds_heads = nn.ModuleList(SegmentationLayer(c, num_classes) for c in channels[:num_stages])

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """``features``: F1..F4 (NCHW, strides 4..32). Returns logits ``[B, K, H, W]`` or a list of them."""
        x = features[-1]
        stage_outputs: list[torch.Tensor] = []
        for stage, skip in zip(self.stages, reversed(features[:-1])):
            x = stage(x, skip)
            stage_outputs.append(x)
        logits = self.head(self.final_up(x))
        if not self.deep_supervision:
            return logits
        # stage_outputs run deepest first (stride 16, 8, 4); heads are ordered shallowest first.
        auxiliary = [head(out) for head, out in zip(self.ds_heads, reversed(stage_outputs))]
        return [logits, *auxiliary]
