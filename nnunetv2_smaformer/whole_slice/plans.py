"""Whole-slice configurations as the plans hold them: names, the marker, and the pure readers the trainer and
``smaformer add-configuration`` share (no I/O, no nnU-Net imports).

A whole-slice configuration holds a marker, ``smaformer_whole_slice: {"size": S}``, that nnU-Net carries through its
plans untouched and that tells :class:`~nnunetv2_smaformer.training.trainer.nnUNetTrainerSMAFormerV2` to train on
the configuration's own patch with whole-slice sampling (:mod:`.loader`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from nnunetv2_smaformer.errors import ConfigurationError
from nnunetv2_smaformer.network.stride import NETWORK_STRIDE

DEFAULT_NAME = "2d_wholeslice"
DEFAULT_SIZE = 256
#: Key of a whole-slice configuration's marker in the plans: ``{"size": S}``.
WHOLE_SLICE_KEY = "smaformer_whole_slice"
#: nnU-Net's own configuration names, never replaced.
NNUNET_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")


def whole_slice_size(configuration: dict) -> int | None:
    """The slice size of a whole-slice configuration (its marker), ``None`` for any other configuration."""
    marker = configuration.get(WHOLE_SLICE_KEY)
    return int(marker["size"]) if isinstance(marker, dict) and "size" in marker else None


def median_depth(plans: dict) -> float:
    """The dataset's median number of slices as nnU-Net plans it: from ``3d_fullres`` when the data are 3D (2D
    configurations keep the slice count of each case), else the original median shape's first axis."""
    fullres = plans["configurations"].get("3d_fullres")
    if fullres is not None and "median_image_size_in_voxels" in fullres:
        return float(fullres["median_image_size_in_voxels"][0])
    return float(plans["original_median_shape_after_transp"][0])


def check_request(name: str, size: int) -> None:
    """Refuse a configuration name or slice size before anything is read."""
    if not name or "__" in name or "/" in name or os.sep in name or name.startswith("."):
        raise ConfigurationError(f"configuration name {name!r} is not usable: it must be non-empty, must not contain "
                                 "'__' (nnU-Net splits model folder names there) or a path separator, and must not "
                                 "start with '.'")
    if name in NNUNET_CONFIGURATIONS:
        raise ConfigurationError(f"configuration name {name!r} is one of nnU-Net's own "
                                 f"({', '.join(NNUNET_CONFIGURATIONS)}); choose another --name")
    if size <= 0 or size % NETWORK_STRIDE:
        raise ConfigurationError(f"--size {size} is not a positive multiple of {NETWORK_STRIDE} "
                                 "(SMAFormerV2's total stride)")


def training_patch(configuration: dict, default: Sequence[int]) -> list[int]:
    """The patch a SMAFormerV2 trainer trains on a configuration (nnU-Net's resolved dict): a whole-slice
    configuration's patch is the slice, elsewhere the trainer's own ``default``."""
    if whole_slice_size(configuration) is not None:
        return [int(p) for p in configuration["patch_size"]]
    return [int(p) for p in default]
