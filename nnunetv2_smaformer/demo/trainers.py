"""The demo's trainers: SMAFormerV2 and stock nnU-Net on one shared CPU budget. They live with the demo, not in
:mod:`nnunetv2_smaformer.training`, because they exist for its budget and phantom, not for users' trainings.

Each method's optimiser and peak learning rate is the best of one search on the demo's phantom and budget
(``benchmarks/demo_search.py``; its tables are in ``docs/results/``). The search's rule: one AdamW grid for
both methods (3e-4, the original SMAFormerV2's, 1e-3 and 3e-3), stock nnU-Net's default SGD at 1, 3, 10 and
30 times its 1e-2 in addition, and a setting judged by its worst run where it was repeated.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.optimizer.nnUNetTrainerAdam import nnUNetTrainerAdam

from nnunetv2_smaformer.training.trainer import TrainingBudget
from nnunetv2_smaformer.training.variants import nnUNetTrainerSMAFormerV2_noPretrain


class DemoBudget(TrainingBudget):
    """The CPU demo's budget, shared by SMAFormerV2 and stock nnU-Net so that both see the same samples.

    Same epochs, iterations and batch size (12 x 40 x 2 = 960 training patches each); no mirroring (4x
    cheaper inference in 2D); nnU-Net's final validation is skipped because the demo predicts and evaluates
    the test cases itself. Mixed in before the trainer class.
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
    patch, SGD (Nesterov, momentum 0.99) with poly decay, at the best peak lr of the search's SGD grid.

    A search row only: nnU-Net's SGD, made for 250 000 iterations, learns less in the demo's 480 than nnU-Net's
    own AdamW variant, so the demo runs ``nnUNetTrainerAdam_demoCPU``.
    """

    peak_lr = 0.1  # nnU-Net's default: 1e-2
    optimiser = "SGD (Nesterov, momentum 0.99)"


class nnUNetTrainerAdam_demoCPU(StockDemoBudget, nnUNetTrainerAdam):
    """The demo's stock nnU-Net: nnU-Net's own Adam variant (``nnUNetTrainerAdam``: AdamW with amsgrad, nnU-Net's
    weight decay 3e-5 and poly decay) on the CPU demo budget, its planned 2D U-Net and patch unchanged, at the
    best peak lr of the search's AdamW grid."""

    peak_lr = 3e-3  # nnU-Net ships this trainer at 3e-4 and 1e-3
    optimiser = "nnU-Net's AdamW variant (amsgrad)"


class nnUNetTrainerSMAFormerV2_demoCPU(DemoBudget, nnUNetTrainerSMAFormerV2_noPretrain):
    """SMAFormerV2 on the CPU demo budget: random initial weights, a 128x128 patch (the demo phantom's slice
    size, the patch stock nnU-Net plans for it too) and, for a schedule of a few hundred steps from scratch, no
    stochastic depth and AdamW at the best peak lr of the search's AdamW grid after one warm-up epoch (at half
    the peak lr), then cosine decay.

    The warm-up epoch was chosen by the worst of repeated runs: without it (the trainer's 2 % of 12 epochs
    rounds to none) some runs at this lr missed an organ.
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


__all__ = ["nnUNetTrainer_demoCPU", "nnUNetTrainerAdam_demoCPU", "nnUNetTrainerSMAFormerV2_demoCPU"]
