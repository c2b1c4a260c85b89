"""Whole-slice sampling for whole-slice configurations (:mod:`.plans`).

nnU-Net's loader makes a third of each batch "foreground" samples: it picks a foreground voxel and centres the crop
on it, bounded only below. With a patch as large as the slice that shifts the slice by up to half its size and
fills the gap with 0 (the normalised mean), so the network would rarely see the whole field of view it is tested
on. :class:`WholeSliceDataLoader` keeps nnU-Net's choice of *which slice* (a foreground sample still comes from a
slice that holds foreground) and places that slice in the patch the way nnU-Net places a random sample: uniformly
among the positions its padding allows, which for a slice no larger than the patch is the centre. Augmentation is
nnU-Net's, unchanged.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader


class WholeSliceDataLoader(nnUNetDataLoader):
    """nnU-Net's 2D data loader (pseudo-3D patches ``(1, H, W)``) that never moves a slice to a foreground voxel."""

    def placement_range(self, data_shape: Sequence[int], axis: int) -> tuple[int, int]:
        """Lowest and highest lower bound of the patch along ``axis`` for a random sample: the patch may extend
        into padding of half the difference between the (initial) patch and the data on each side."""
        need_to_pad = max(int(self.need_to_pad[axis]), int(self.patch_size[axis]) - int(data_shape[axis]))
        low = -(need_to_pad // 2)
        high = int(data_shape[axis]) + need_to_pad // 2 + need_to_pad % 2 - int(self.patch_size[axis])
        return low, high

    def get_bbox(self, data_shape, force_fg: bool, class_locations, overwrite_class=None, verbose: bool = False):
        lbs, _ = super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)
        lower: list[int] = [int(lbs[0])]  # the slice nnU-Net chose
        for axis in range(1, len(data_shape)):
            low, high = self.placement_range(data_shape, axis)
            lower.append(int(np.random.randint(low, high + 1)))
        return lower, [lo + int(p) for lo, p in zip(lower, self.patch_size)]


@contextlib.contextmanager
def whole_slice_loaders() -> Iterator[None]:
    """Within the block, nnU-Net's trainer builds :class:`WholeSliceDataLoader` where it builds ``nnUNetDataLoader``.

    ``nnUNetTrainer.get_dataloaders`` constructs its loaders from that module-level name and has no hook for the
    class; substituting the name for the duration of the call keeps every argument nnU-Net passes.
    """
    from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as trainer_module

    original = trainer_module.nnUNetDataLoader
    trainer_module.nnUNetDataLoader = WholeSliceDataLoader
    try:
        yield
    finally:
        trainer_module.nnUNetDataLoader = original
