"""SMAFormerV2: Swin-T encoder with Synergistic Multi-Attention, SMA/E-MLP decoder, edge head."""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import torch
from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from torch import nn

from nnunetv2_smaformer.network.decoder import DECODER_BLOCKS_PER_STAGE, SMAFormerDecoder
from nnunetv2_smaformer.network.encoder import InputProjection, SMASwinEncoder
from nnunetv2_smaformer.network.stride import NETWORK_STRIDE
from nnunetv2_smaformer.paths import PathLike
from nnunetv2_smaformer.precision import autocast_supported

if TYPE_CHECKING:
    from nnunetv2_smaformer.pretrained.swin import LoadReport, SwinWeights


class SMAFormerV2(AbstractDynamicNetworkArchitectures):
    """SMAFormerV2 for 2D segmentation.

    Input ``[B, in_channels, H, W]`` with H and W multiples of 32. Output logits
    ``[B, num_classes, H, W]``; with deep supervision a list of logits at full, 1/4, 1/8 and
    1/16 resolution.

    dynamic-network-architectures' contract, read by nnU-Net-side pre-training and fine-tuning tools:
    ``key_to_encoder`` is the Swin encoder with its SMA modules, ``key_to_stem`` and
    ``keys_to_in_proj`` the input projection, the only weights that depend on the input channels.
    Every layer that outputs class logits has ``.seg_layers.`` in its state-dict keys, so nnU-Net's
    ``-pretrained_weights`` loader re-initialises exactly those when the label set changes.

    Args:
        in_channels: Input channels (1 for CT, any number works).
        num_classes: Output channels (segmentation classes including background).
        window_size: Swin attention window; 8 tiles the 64/32/16/8 maps of a 256 input exactly.
            7 is the ImageNet checkpoint's window (timm then pads feature maps internally).
        use_edge_enhancement: Sobel edge-enhancement head instead of a plain 1x1 conv.
        deep_supervision: Start with deep supervision on (see ``decoder.deep_supervision``).
        drop_path_rate: Stochastic depth; linear 0 -> rate over the encoder's 12 blocks and
            rate -> 0 over the decoder's 6 blocks (deepest first).
        img_size: Reference input size for the Swin window/shift layout (the nnU-Net patch).
        autocast_dtypes: Autocast dtypes the forward pass may run under. Under any other active autocast
            dtype (nnU-Net's validation and predictor autocast to fp16 on CUDA) it runs under the first of
            these that the device supports, else without autocast (fp32); ``()`` always fp32; ``None``
            (default) whatever autocast is active. Not saved with the weights: whoever builds the network
            sets it (the trainer, from its precision).
        encoder_sma: The SMA module after each of the four Swin stages; ``False`` replaces them by identities.
        decoder_sma: The SMA transformer blocks (SMA + E-MLP, two per stage) of the decoder; ``False`` replaces them
            by identities and keeps each stage's up-sampling, skip fusion and LayerNorm. With both off the network is
            a plain Swin U-Net: input projection, Swin-T, that decoder, the head (the ablation of everything SMA adds).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        window_size: int = 8,
        use_edge_enhancement: bool = True,
        deep_supervision: bool = False,
        drop_path_rate: float = 0.2,
        img_size: int = 256,
        autocast_dtypes: Sequence[torch.dtype] | None = None,
        encoder_sma: bool = True,
        decoder_sma: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"in_channels and num_classes must be >= 1, got {in_channels} and {num_classes}")
        if img_size % NETWORK_STRIDE:
            raise ValueError(f"img_size must be a multiple of {NETWORK_STRIDE}, got {img_size}")
        self.key_to_encoder = "encoder"
        self.key_to_stem = "input_proj"
        self.keys_to_in_proj = ("input_proj.conv",)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.window_size = window_size
        self.autocast_dtypes: tuple[torch.dtype, ...] | None = (
            None if autocast_dtypes is None else tuple(autocast_dtypes))
        self.input_proj = InputProjection(in_channels)
        self.encoder = SMASwinEncoder(img_size=img_size, window_size=window_size, drop_path_rate=drop_path_rate,
                                      use_sma=encoder_sma)
        blocks_per_stage = DECODER_BLOCKS_PER_STAGE if decoder_sma else 0
        num_decoder_blocks = blocks_per_stage * (len(self.encoder.channels) - 1)
        decoder_rates = torch.linspace(drop_path_rate, 0.0, num_decoder_blocks).tolist()
        self.decoder = SMAFormerDecoder(
            self.encoder.channels,
            num_classes,
            use_edge_enhancement=use_edge_enhancement,
            deep_supervision=deep_supervision,
            drop_path_rates=decoder_rates,
            blocks_per_stage=blocks_per_stage,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input [B, {self.in_channels}, H, W], got shape {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if height % NETWORK_STRIDE or width % NETWORK_STRIDE:
            raise ValueError(
                f"input height and width must be multiples of {NETWORK_STRIDE}, got {height}x{width}"
            )
        with self._allowed_autocast(x.device.type):
            return self.decoder(self.encoder(self.input_proj(x)))

    def _allowed_autocast(self, device_type: str) -> AbstractContextManager:
        """The autocast the forward pass runs under: the active one if ``autocast_dtypes`` allows it, else the first
        allowed dtype the device supports, else none (fp32)."""
        if self.autocast_dtypes is None or not torch.is_autocast_enabled(device_type):
            return contextlib.nullcontext()
        if torch.get_autocast_dtype(device_type) in self.autocast_dtypes:
            return contextlib.nullcontext()
        for dtype in self.autocast_dtypes:
            if autocast_supported(device_type, dtype):
                return torch.autocast(device_type, dtype=dtype)
        return torch.autocast(device_type, enabled=False)

    def load_pretrained(
        self, path: PathLike | SwinWeights | None = None, min_coverage: float = 1.0
    ) -> LoadReport:
        """Load ImageNet Swin-T weights into the encoder; see :mod:`nnunetv2_smaformer.pretrained`.

        Args:
            path: A Swin-T file (official ``.pth`` or timm's ``.safetensors`` / ``.pth``), weights already
                read (:class:`~nnunetv2_smaformer.pretrained.SwinWeights`), or None for timm's pretrained
                ``swin_tiny_patch4_window7_224.ms_in1k`` from the Hugging Face cache (downloaded once).
            min_coverage: Fail unless at least this fraction of the encoder's parameters is loaded.
        """
        from nnunetv2_smaformer.pretrained.swin import SwinWeights, load_swin_weights, swin_weights

        weights = path if isinstance(path, SwinWeights) else swin_weights(path)
        return load_swin_weights(self.encoder.swin, weights, min_coverage=min_coverage)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters never weight-decayed besides norms and biases, named as in ``named_parameters()`` (timm's
        convention, which ``timm.optim.param_groups_weight_decay`` reads): Swin's relative-position tables."""
        return {name for name, _ in self.named_parameters() if name.endswith("relative_position_bias_table")}

    def parameter_groups(self) -> dict[str, nn.Module]:
        """The model's parts, in forward order; every parameter belongs to exactly one."""
        return OrderedDict(
            input_projection=self.input_proj,
            encoder=self.encoder.swin,
            sma=self.encoder.sma,
            decoder=self.decoder.stages,
            final_upsampling=self.decoder.final_up,
            head=self.decoder.head,
            deep_supervision=self.decoder.ds_heads,
        )

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part (see :meth:`parameter_groups`) plus ``total``."""
        counts = {name: sum(p.numel() for p in part.parameters()) for name, part in self.parameter_groups().items()}
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts
