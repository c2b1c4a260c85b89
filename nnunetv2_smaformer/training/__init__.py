"""nnU-Net trainers for SMAFormerV2."""
from nnunetv2_smaformer.training.trainer import nnUNetTrainerSMAFormerV2
from nnunetv2_smaformer.training.variants import (
    nnUNetTrainerSMAFormerV2_5epochs,
    nnUNetTrainerSMAFormerV2_50epochs,
    nnUNetTrainerSMAFormerV2_150epochs,
    nnUNetTrainerSMAFormerV2_250epochs,
    nnUNetTrainerSMAFormerV2_Benchmark_5epochs,
    nnUNetTrainerSMAFormerV2_Benchmark_5epochs_noDataLoading,
    nnUNetTrainerSMAFormerV2_fp16,
    nnUNetTrainerSMAFormerV2_fp32,
    nnUNetTrainerSMAFormerV2_noEdge,
    nnUNetTrainerSMAFormerV2_noPretrain,
    nnUNetTrainerSMAFormerV2_noPretrain_5epochs,
    nnUNetTrainerSMAFormerV2_noPretrain_50epochs,
    nnUNetTrainerSMAFormerV2_noPretrain_150epochs,
    nnUNetTrainerSMAFormerV2_noPretrain_250epochs,
    nnUNetTrainerSMAFormerV2_smoke,
)

__all__ = [
    "nnUNetTrainerSMAFormerV2",
    "nnUNetTrainerSMAFormerV2_150epochs",
    "nnUNetTrainerSMAFormerV2_250epochs",
    "nnUNetTrainerSMAFormerV2_50epochs",
    "nnUNetTrainerSMAFormerV2_5epochs",
    "nnUNetTrainerSMAFormerV2_Benchmark_5epochs",
    "nnUNetTrainerSMAFormerV2_Benchmark_5epochs_noDataLoading",
    "nnUNetTrainerSMAFormerV2_fp16",
    "nnUNetTrainerSMAFormerV2_fp32",
    "nnUNetTrainerSMAFormerV2_noEdge",
    "nnUNetTrainerSMAFormerV2_noPretrain",
    "nnUNetTrainerSMAFormerV2_noPretrain_150epochs",
    "nnUNetTrainerSMAFormerV2_noPretrain_250epochs",
    "nnUNetTrainerSMAFormerV2_noPretrain_50epochs",
    "nnUNetTrainerSMAFormerV2_noPretrain_5epochs",
    "nnUNetTrainerSMAFormerV2_smoke",
]
