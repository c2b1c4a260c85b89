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


class nnUNetTrainerSMAFormerV2_noSMA(nnUNetTrainerSMAFormerV2):
    """Everything SMA adds replaced by identity: the encoder's four SMA modules and the decoder's SMA transformer
    blocks (ablation; a Swin U-Net with SMAFormerV2's input projection, up-sampling, fusion and head)."""

    network_kwargs = {"encoder_sma": False, "decoder_sma": False}


class nnUNetTrainerSMAFormerV2_noEncoderSMA(nnUNetTrainerSMAFormerV2):
    """The encoder's four SMA modules replaced by identity: plain Swin-T features (ablation)."""

    network_kwargs = {"encoder_sma": False}


class nnUNetTrainerSMAFormerV2_noDecoderSMA(nnUNetTrainerSMAFormerV2):
    """The decoder's SMA transformer blocks (SMA + E-MLP) replaced by identity; up-sampling, fusion and norm stay
    (ablation)."""

    network_kwargs = {"decoder_sma": False}


#: The ablation table: the full network and each variant that changes what is built, with what it changes, in the
#: order to report them. ``_noPretrain`` builds the default network (it changes only the initialisation).
ABLATION_VARIANTS: dict[type[nnUNetTrainerSMAFormerV2], str] = {
    nnUNetTrainerSMAFormerV2: "none (the full network)",
    nnUNetTrainerSMAFormerV2_noEdge: "plain 1x1 head instead of the Sobel edge head",
    nnUNetTrainerSMAFormerV2_noEncoderSMA: "the encoder's 4 SMA modules -> identity",
    nnUNetTrainerSMAFormerV2_noDecoderSMA: "the decoder's 6 SMA transformer blocks -> identity",
    nnUNetTrainerSMAFormerV2_noSMA: "both -> identity (a Swin U-Net)",
}


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
