"""Trainer variants, nnU-Net style: one thin subclass per change, named ``nnUNetTrainerSMAFormerV2_<change>``."""
from __future__ import annotations

from typing import ClassVar

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.optimizer.nnUNetTrainerAdam import nnUNetTrainerAdam
from nnunetv2.training.nnUNetTrainer.variants.benchmarking.nnUNetTrainerBenchmark_5epochs import (
    nnUNetTrainerBenchmark_5epochs,
)
from nnunetv2.training.nnUNetTrainer.variants.benchmarking.nnUNetTrainerBenchmark_5epochs_noDataLoading import (
    nnUNetTrainerBenchmark_5epochs_noDataLoading,
)

from nnunetv2_smaformer.training.trainer import TrainingBudget, nnUNetTrainerSMAFormerV2


class nnUNetTrainerSMAFormerV2_noPretrain(nnUNetTrainerSMAFormerV2):
    """Randomly initialised encoder; needs no ImageNet file."""

    use_pretrained = False


class nnUNetTrainerSMAFormerV2_noEdge(nnUNetTrainerSMAFormerV2):
    """Plain 1x1 segmentation head instead of the Sobel edge-enhancement head (ablation)."""

    network_kwargs = {"use_edge_enhancement": False}


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
    """1 epoch of 10 training and 2 validation iterations, no mirroring (4x cheaper validation): for tests and CI."""

    epochs = 1
    iterations_per_epoch = 10
    val_iterations_per_epoch = 2
    mirroring = False


class nnUNetTrainerSMAFormerV2_Benchmark_5epochs(nnUNetTrainerSMAFormerV2_noPretrain, nnUNetTrainerBenchmark_5epochs):
    """nnU-Net's 5-epoch benchmark (CUDA only, writes benchmark_result.json) with SMAFormerV2."""


class nnUNetTrainerSMAFormerV2_Benchmark_5epochs_noDataLoading(
    nnUNetTrainerSMAFormerV2_noPretrain, nnUNetTrainerBenchmark_5epochs_noDataLoading
):
    """nnU-Net's 5-epoch benchmark on a fixed in-memory batch (CUDA only) with SMAFormerV2."""


class DemoBudget(TrainingBudget):
    """The CPU demo's budget, shared by SMAFormerV2 and stock nnU-Net so that both see the same samples.

    Same epochs, iterations and batch size (12 x 40 x 2 = 960 training patches each); no mirroring (4x cheaper inference on 2 cores); nnU-Net's
    final validation is skipped because the demo predicts and evaluates the test cases itself.
    Mixed in before the trainer class.
    """

    epochs = 12
    iterations_per_epoch = 40
    val_iterations_per_epoch = 4
    max_batch_size = 2
    mirroring = False

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        # Stock nnU-Net takes its batch size from the plans (SMAFormerV2's trainer caps max_batch_size itself).
        plans["configurations"][configuration]["batch_size"] = self.max_batch_size
        super().__init__(plans, configuration, fold, dataset_json, device)

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        self.print_to_log_file("Final validation skipped: the demo predicts and evaluates the test cases.")

    @classmethod
    def budget_summary(cls) -> str:
        """One line for reports: the budget both demo trainers share."""
        samples = cls.epochs * cls.iterations_per_epoch * cls.max_batch_size
        return (f"{cls.epochs} epochs x {cls.iterations_per_epoch} iterations x batch {cls.max_batch_size} "
                f"= {samples} training patches, {'with' if cls.mirroring else 'no'} mirroring")


class StockDemoBudget(DemoBudget):
    """The demo budget for a stock nnU-Net trainer, with its peak learning rate as a class attribute
    (nnU-Net keeps it in ``self.initial_lr``) and a line describing its optimiser for the report."""

    #: Peak learning rate of the trainer's optimiser and poly schedule.
    peak_lr: ClassVar[float]
    optimiser: ClassVar[str]

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = self.peak_lr

    @classmethod
    def settings_summary(cls) -> str:
        return f"nnU-Net's planned 2D U-Net and patch, {cls.optimiser} with peak lr {cls.peak_lr:g} and poly decay"


class nnUNetTrainer_demoCPU(StockDemoBudget, nnUNetTrainer):
    """Stock nnU-Net on the CPU demo budget with its default optimiser: its own planned 2D U-Net and 128x128
    patch, SGD (Nesterov, momentum 0.99) with poly decay, at a peak lr of 0.1, 10x nnU-Net's default 1e-2.

    The lr is the best of 1, 3, 10 and 30x the default on the demo phantom in ``benchmarks/demo_search.py``;
    even so, nnU-Net's SGD (made for 250 000 iterations) stays far from converged after the demo's 480
    and below nnU-Net's own AdamW variant, so the demo runs ``nnUNetTrainerAdam_demoCPU`` instead.
    """

    peak_lr = 0.1  # nnU-Net's default: 1e-2
    optimiser = "SGD (Nesterov, momentum 0.99)"


class nnUNetTrainerAdam_demoCPU(StockDemoBudget, nnUNetTrainerAdam):
    """Stock nnU-Net on the CPU demo budget with nnU-Net's own Adam variant (``nnUNetTrainerAdam``: AdamW
    with amsgrad, nnU-Net's weight decay 3e-5 and poly decay), its planned 2D U-Net and patch unchanged.

    The demo's stock nnU-Net. Its peak lr 3e-3 is the best of the AdamW grid (3e-4, 1e-3, 3e-3) that
    ``benchmarks/demo_search.py`` runs for both methods on the demo phantom (94.3 % mean DSC; 1e-3: 94.0 %;
    nnU-Net's default SGD at its best lr: 67.8 %).
    """

    peak_lr = 3e-3  # nnU-Net ships this trainer at 3e-4 and 1e-3
    optimiser = "nnU-Net's AdamW variant (amsgrad)"


class nnUNetTrainerSMAFormerV2_demoCPU(DemoBudget, nnUNetTrainerSMAFormerV2_noPretrain):
    """SMAFormerV2 on the CPU demo budget: random initial weights, a 128x128 patch (the demo phantom's
    slice size, the patch stock nnU-Net plans for it too) and, for a schedule of a few hundred steps
    from scratch, no stochastic depth and AdamW at a peak lr of 1e-3 after one warm-up epoch (at half
    the peak lr), then cosine decay.

    1e-3 is the best of the AdamW grid (3e-4, the original's, 1e-3 and 3e-3) that
    ``benchmarks/demo_search.py`` runs for both methods on the demo phantom (90.9 % mean DSC; 3e-3: 85.1 %,
    3e-4: 66.7 %). Without warm-up (the trainer's 2 % of 12 epochs rounds to none) repeated runs at 1e-3
    ranged from 75.0 to 90.9 %, one missing the pancreas; with one warm-up epoch nine runs gave 85.2 to
    93.0 % (2e-3 with warm-up: 87.1 %).
    """

    training_patch_size = (128, 128)
    network_kwargs = {"drop_path_rate": 0.0}
    initial_lr_adamw = 1e-3
    warmup_fraction = 1 / DemoBudget.epochs  # one warm-up epoch

    @classmethod
    def settings_summary(cls) -> str:
        patch = "x".join(str(p) for p in cls.training_patch_size)
        warmup = cls.warmup_epochs_of(cls.epochs)
        schedule = f"{warmup} warm-up epoch(s), then cosine decay" if warmup else "cosine decay (no warm-up)"
        return (f"SMAFormerV2 from random weights, {patch} patch, no stochastic depth, AdamW with peak lr "
                f"{cls.initial_lr_adamw:g}, {schedule}")
