"""Input projection and the Swin-T encoder with an SMA module after every stage."""
from __future__ import annotations

import torch
from timm.models.swin_transformer import SwinTransformer, SwinTransformerBlock
from torch import nn

from nnunetv2_smaformer.network.attention import SMA

# Swin-T, the configuration of the official ImageNet checkpoint.
SWIN_T_EMBED_DIM = 96
SWIN_T_DEPTHS = (2, 2, 6, 2)
SWIN_T_NUM_HEADS = (3, 6, 12, 24)
SWIN_T_PATCH_SIZE = 4


class InputProjection(nn.Module):
    """3x3 conv + ReLU mapping any number of input channels to the 3 the pretrained patch embedding expects.

    Shapes: ``[B, in_channels, H, W] -> [B, 3, H, W]``.
    """

    def __init__(self, in_channels: int, out_channels: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class CachedShiftMask:
    """Shifted-window attention mask of one timm Swin block, computed once per feature size.

    timm's ``strict_img_size=False`` makes every block rebuild its mask in every forward (``dynamic_mask``);
    the mask depends only on the feature size, window and shift, so this cache returns the same tensor
    for the same size, window, shift, device and dtype. Installed as the block's ``get_attn_mask``; holds
    no parameters and no state-dict entries.
    """

    def __init__(self, block: SwinTransformerBlock) -> None:
        self._block = block
        self._masks: dict[tuple, torch.Tensor | None] = {}

    def __call__(self, x: torch.Tensor | None = None, device=None, dtype=None) -> torch.Tensor | None:
        compute = SwinTransformerBlock.get_attn_mask
        if x is None:  # timm asks for a static mask (e.g. from set_input_size): nothing to cache
            return compute(self._block, x, device=device, dtype=dtype)
        if torch.compiler.is_compiling():
            # A compiled graph holds the mask itself; filling the cache inside it would change what the
            # graph's guards saw and force a recompilation on the next call.
            return compute(self._block, x)
        key = (x.shape[1], x.shape[2], self._block.window_size, self._block.shift_size, x.device, x.dtype)
        if key not in self._masks:
            with torch.no_grad():
                self._masks[key] = compute(self._block, x)
        return self._masks[key]


class SMASwinEncoder(nn.Module):
    """Swin-T (timm) whose every stage output is refined by SMA before feeding the next stage.

    The refined maps are also the skip features. The final LayerNorm of Swin is applied to the
    last stage before its SMA, as in Swin's own feature path, so every pretrained tensor is used.

    Shapes for a ``[B, 3, H, W]`` input (H, W multiples of 32): ``[B, 96, H/4, W/4]``,
    ``[B, 192, H/8, W/8]``, ``[B, 384, H/16, W/16]``, ``[B, 768, H/32, W/32]``.

    Args:
        img_size: Reference input size. It fixes at which stages the window is clamped to the
            feature size (and shifting switched off), exactly as Swin does; other sizes still run.
        window_size: Attention window. 8 divides the 64/32/16/8 feature maps of a 256 input.
        drop_path_rate: Stochastic depth, increased linearly over the 12 Swin blocks.
        use_sma: SMA after every stage; ``False`` puts identities in their place (the ablation of a plain Swin-T
            encoder: same features, same state-dict keys for Swin, no ``sma.*`` keys).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 256,
        window_size: int = 8,
        drop_path_rate: float = 0.2,
        use_sma: bool = True,
    ) -> None:
        super().__init__()
        self.swin = SwinTransformer(
            img_size=img_size,
            patch_size=SWIN_T_PATCH_SIZE,
            in_chans=3,
            num_classes=0,
            global_pool="",
            embed_dim=SWIN_T_EMBED_DIM,
            depths=SWIN_T_DEPTHS,
            num_heads=SWIN_T_NUM_HEADS,
            window_size=window_size,
            mlp_ratio=4.0,
            qkv_bias=True,
            drop_path_rate=drop_path_rate,
            # Dynamic shifted-window masks so that any multiple-of-32 input runs.
            strict_img_size=False,
        )
        self.channels: tuple[int, ...] = tuple(SWIN_T_EMBED_DIM * 2**i for i in range(len(SWIN_T_DEPTHS)))
        self.sma = nn.ModuleList(SMA(c) if use_sma else nn.Identity() for c in self.channels)
        for block in self.swin_blocks():
            # timm leaves fused attention off for Swin by default; SDPA is exact and faster.
            block.attn.fused_attn = True
            block.get_attn_mask = CachedShiftMask(block)

    def swin_blocks(self) -> list[nn.Module]:
        return [block for stage in self.swin.layers for block in stage.blocks]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[B, 3, H, W]`` -> four skip features ``F1..F4`` (NCHW, strides 4, 8, 16, 32)."""
        features: list[torch.Tensor] = []
        x = self.swin.patch_embed(x)  # [B, H/4, W/4, 96], channels last
        last = len(self.swin.layers) - 1
        for i, (stage, sma) in enumerate(zip(self.swin.layers, self.sma)):
            x = stage(x)
            if i == last:
                x = self.swin.norm(x)
            enhanced = sma(x.permute(0, 3, 1, 2))
            features.append(enhanced)
            x = enhanced.permute(0, 2, 3, 1)
        return features

