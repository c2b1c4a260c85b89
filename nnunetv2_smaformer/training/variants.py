"""Trainer variants, nnU-Net style: one thin subclass per change, named ``nnUNetTrainerSMAFormerV2_<change>``."""
from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.variants.benchmarking.nnUNetTrainerBenchmark_5epochs import (
    nnUNetTrainerBenchmark_5epochs,
)
from nnunetv2.training.nnUNetTrainer.variants.benchmarking.nnUNetTrainerBenchmark_5epochs_noDataLoading import (
    nnUNetTrainerBenchmark_5epochs_noDataLoading,
)

from nnunetv2_smaformer.training.trainer import nnUNetTrainerSMAFormerV2


class nnUNetTrainerSMAFormerV2_noPretrain(nnUNetTrainerSMAFormerV2):
    """Randomly initialised encoder; needs no ImageNet file."""

    use_pretrained = False


class nnUNetTrainerSMAFormerV2_noEdge(nnUNetTrainerSMAFormerV2):
    """Plain 1x1 segmentation head instead of the Sobel edge-enhancement head (ablation)."""

    network_kwargs = {"use_edge_enhancement": False}


class nnUNetTrainerSMAFormerV2_fp16(nnUNetTrainerSMAFormerV2):
    """nnU-Net's own mixed precision on CUDA: fp16 autocast with a GradScaler, also where the device has bf16."""

    precision = "fp16"


class nnUNetTrainerSMAFormerV2_fp32(nnUNetTrainerSMAFormerV2):
    """No autocast: fp32 training, validation and inference (the way out when mixed precision overflows)."""

    precision = "fp32"


class nnUNetTrainerSMAFormerV2_5epochs(nnUNetTrainerSMAFormerV2):
    epochs = 5


class nnUNetTrainerSMAFormerV2_50epochs(nnUNetTrainerSMAFormerV2):
    epochs = 50


class nnUNetTrainerSMAFormerV2_150epochs(nnUNetTrainerSMAFormerV2):
    """The original's training length."""

    epochs = 150


class nnUNetTrainerSMAFormerV2_250epochs(nnUNetTrainerSMAFormerV2):
    epochs = 250


class nnUNetTrainerSMAFormerV2_noPretrain_5epochs(nnUNetTrainerSMAFormerV2_noPretrain):
    epochs = 5


class nnUNetTrainerSMAFormerV2_noPretrain_50epochs(nnUNetTrainerSMAFormerV2_noPretrain):
    epochs = 50


class nnUNetTrainerSMAFormerV2_noPretrain_150epochs(nnUNetTrainerSMAFormerV2_noPretrain):
    epochs = 150


class nnUNetTrainerSMAFormerV2_noPretrain_250epochs(nnUNetTrainerSMAFormerV2_noPretrain):
    epochs = 250


class nnUNetTrainerSMAFormerV2_smoke(nnUNetTrainerSMAFormerV2_noPretrain):
    """1 epoch of 5 training and 2 validation iterations, no mirroring (4x cheaper validation): for tests and CI."""

    epochs = 1
    iterations_per_epoch = 5
    val_iterations_per_epoch = 2
    mirroring = False


class nnUNetTrainerSMAFormerV2_Benchmark_5epochs(nnUNetTrainerSMAFormerV2_noPretrain, nnUNetTrainerBenchmark_5epochs):
    """nnU-Net's 5-epoch benchmark (CUDA only, writes benchmark_result.json) with SMAFormerV2."""


class nnUNetTrainerSMAFormerV2_Benchmark_5epochs_noDataLoading(
    nnUNetTrainerSMAFormerV2_noPretrain, nnUNetTrainerBenchmark_5epochs_noDataLoading
):
    """nnU-Net's 5-epoch benchmark on a fixed in-memory batch (CUDA only) with SMAFormerV2."""
