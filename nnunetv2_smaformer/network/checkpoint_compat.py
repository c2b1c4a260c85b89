"""Loading checkpoints written by earlier versions of the network.

Earlier versions gave every convolution directly before a BatchNorm a bias. Such a bias only shifts
what the BatchNorm normalises: in training the batch mean removes it, in evaluation the running
mean holds it. Subtracting the old bias from the running mean and dropping it gives the bias-free
module exactly the old function, so those checkpoints keep predicting and training as before.
"""
from __future__ import annotations

from typing import ClassVar

import torch


def fold_conv_bias_into_bn(state_dict: dict[str, torch.Tensor], prefix: str,
                           conv_bn_pairs: tuple[tuple[str, str], ...]) -> None:
    """Remove ``<prefix><conv>.bias`` from ``state_dict`` in place and subtract it from
    ``<prefix><bn>.running_mean``."""
    for conv, norm in conv_bn_pairs:
        bias = state_dict.pop(f"{prefix}{conv}.bias", None)
        mean_key = f"{prefix}{norm}.running_mean"
        if bias is not None and mean_key in state_dict:
            state_dict[mean_key] = state_dict[mean_key] - bias


class FoldsLegacyConvBias:
    """Mixin (before ``nn.Module``) for modules with bias-free convolutions directly before a BatchNorm.

    ``conv_bn_pairs`` names each such pair relative to the module, e.g. ``(("proj", "norm"),)``.
    Torch loads a parent before its children and hands them what the parent left, so folding here
    reaches the BatchNorm.
    """

    conv_bn_pairs: ClassVar[tuple[tuple[str, str], ...]] = ()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        fold_conv_bias_into_bn(state_dict, prefix, self.conv_bn_pairs)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
