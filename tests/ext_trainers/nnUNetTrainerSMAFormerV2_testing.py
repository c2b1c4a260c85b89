"""Test-only trainers, found through a second nnUNet_extTrainer entry (as a user's own would be).

They train 64x64 patches, the test datasets' slice size: a 256x256 patch on 64x64 slices is 16x the pixels for the
same test (the shipped smoke trainer's 256x256 patch is checked once, on the shared smoke model)."""
import json
import math
from typing import ClassVar

import torch

from nnunetv2_smaformer.training.trainer import unwrap_network
from nnunetv2_smaformer.training.variants import nnUNetTrainerSMAFormerV2_noSMA, nnUNetTrainerSMAFormerV2_smoke

#: Prefix of the lines the probe trainer writes into its training log (read by tests/test_trainer_cli.py).
PROBE = "probe "


class _ScaledLoss(torch.nn.Module):
    def __init__(self, loss: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.loss, self.factor = loss, factor

    def forward(self, *args, **kwargs):
        return self.factor * self.loss(*args, **kwargs)


class NaNBatches:
    """Mixin: chosen training batches turned to NaN (so that the forward pass is NaN) before the trainer's step."""

    #: Training steps (counted from 1 over the run of this process) whose batch is replaced by NaN.
    nan_steps: ClassVar[frozenset[int]] = frozenset()
    #: From this step on every batch is NaN.
    nan_from: ClassVar[int | None] = None

    def train_step(self, batch: dict) -> dict:
        self.steps_run = getattr(self, "steps_run", 0) + 1
        if self.steps_run in self.nan_steps or (self.nan_from is not None and self.steps_run >= self.nan_from):
            batch = dict(batch, data=torch.full_like(batch["data"], float("nan")))
        return super().train_step(batch)


class nnUNetTrainerSMAFormerV2_resumeTest(NaNBatches, nnUNetTrainerSMAFormerV2_smoke):
    """4 short epochs (one of lr warm-up) with a checkpoint after each, ImageNet initialisation on, bf16 autocast
    (also on the CPU), the batch of the 2nd training step NaN; a probe.

    The probe observes what the trainer's own code does and changes nothing of it but the loss's scale (x50, so
    that raw gradient norms exceed the clipping threshold): it logs the parameter names of each optimiser group
    once, and per training step the optimiser takes the total gradient norm after backward (raw) and when the
    optimiser steps (seen).
    """

    training_patch_size = (64, 64)
    use_pretrained = True
    epochs = 4
    iterations_per_epoch = 3
    val_iterations_per_epoch = 1
    warmup_fraction = 0.25
    precision = "bf16"
    nan_steps = frozenset({2})

    # nnU-Net records the __init__ arguments by name for its checkpoints: keep the signature explicit.
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.save_every = 1
        self._raw_squares = []

    def initialize(self) -> None:
        super().initialize()
        self.loss = _ScaledLoss(self.loss, 50.0)
        network = unwrap_network(self.network)
        names = {id(p): name for name, p in network.named_parameters()}
        groups = [{"weight_decay": g["weight_decay"], "names": [names[id(p)] for p in g["params"]]}
                  for g in self.optimizer.param_groups]
        self.print_to_log_file(PROBE + "groups " + json.dumps(groups))
        for p in network.parameters():
            p.register_post_accumulate_grad_hook(lambda p: self._raw_squares.append(float(p.grad.pow(2).sum())))
        self.optimizer.register_step_pre_hook(self._seen)

    def _seen(self, optimizer, args, kwargs) -> None:
        seen = math.sqrt(sum(float(p.grad.pow(2).sum()) for g in optimizer.param_groups for p in g["params"]
                             if p.grad is not None))
        self.print_to_log_file(f"{PROBE}grad-norm raw {math.sqrt(sum(self._raw_squares))!r} seen {seen!r}")

    def train_step(self, batch: dict) -> dict:
        self._raw_squares.clear()
        return super().train_step(batch)


class nnUNetTrainerSMAFormerV2_smokeImageNet(nnUNetTrainerSMAFormerV2_smoke):
    """The smoke budget with ImageNet initialisation on (from $SMAFORMER_SWIN_WEIGHTS or timm's cached weights)."""

    training_patch_size = (64, 64)
    use_pretrained = True


class nnUNetTrainerSMAFormerV2_nanRun(NaNBatches, nnUNetTrainerSMAFormerV2_smoke):
    """2 epochs of 5 steps, 64x64, fp32; from the 3rd training step on every batch is NaN: training stops at the 4th
    in a row (epoch 1, its 1st step)."""

    training_patch_size = (64, 64)
    epochs = 2
    iterations_per_epoch = 5
    precision = "fp32"
    max_consecutive_nonfinite_steps = 4
    nan_from = 3


class nnUNetTrainerSMAFormerV2_bf16Test(nnUNetTrainerSMAFormerV2_smoke):
    """The smoke budget on 64x64 patches in bf16 autocast, also on the CPU."""

    training_patch_size = (64, 64)
    precision = "bf16"


class nnUNetTrainerSMAFormerV2_noSMA_smokeTest(nnUNetTrainerSMAFormerV2_smoke):
    """The smoke budget on 64x64 patches with the _noSMA ablation's network."""

    training_patch_size = (64, 64)
    network_kwargs = nnUNetTrainerSMAFormerV2_noSMA.network_kwargs
