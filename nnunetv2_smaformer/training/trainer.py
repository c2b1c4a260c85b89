"""``nnUNetTrainerSMAFormerV2``: SMAFormerV2 inside stock nnU-Net v2.

Everything not listed here is nnU-Net's: planning, preprocessing, augmentation, the Dice+CE
loss with deep supervision, sliding-window inference and 3D validation, AMP, compile and DDP.

* network: :class:`~nnunetv2_smaformer.network.SMAFormerV2`, built from nnU-Net's input
  channels and segmentation heads (also at inference, where no pretrained file is needed);
* patch 256x256 written into the plans this trainer receives, so the ``plans.json`` saved
  next to the checkpoints (which inference reads) holds it too; on a whole-slice configuration
  (:mod:`nnunetv2_smaformer.whole_slice`) its own slice-sized patch, with whole-slice sampling
  (:mod:`nnunetv2_smaformer.whole_slice.loader`); batch size 28 capped like nnU-Net caps it for small datasets (at most
  5 % of the dataset's voxels at the configuration's resolution), at least 2;
* optimisation of the original: AdamW, lr 3e-4, cosine annealing after a short linear warm-up
  (2 % of the epochs), gradient clipping at 1.0;
* mixed precision a Swin transformer survives (:mod:`nnunetv2_smaformer.precision`): on CUDA bf16 autocast where the
  device supports it, else fp16 with nnU-Net's GradScaler (``precision``); validation and
  ``nnUNetv2_predict`` never run the network in a less safe precision; a step with a non-finite loss
  or gradients changes nothing and is counted, a run of them stops training with a clear error, and
  no checkpoint is written with non-finite weights;
* ImageNet Swin-T weights, loaded when a training starts from scratch (not after ``--c``/``--val``
  nor over nnU-Net's ``-pretrained_weights``): the file named by ``$SMAFORMER_SWIN_WEIGHTS``, or else
  timm's pretrained ``swin_tiny_patch4_window7_224.ms_in1k`` from the Hugging Face cache; the load
  report goes to the training log.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn
from torch._dynamo import OptimizedModule
from torch.nn.parallel import DistributedDataParallel

from nnunetv2_smaformer.errors import NonFiniteTrainingError, PretrainedWeightsError
from nnunetv2_smaformer.network.smaformer import SMAFormerV2
from nnunetv2_smaformer.precision import (
    GRAD_CLIP_NORM,
    NonFiniteGuard,
    backward_and_step,
    inference_autocast_dtypes,
    non_finite_tensors,
    resolve_precision,
    training_autocast_dtypes,
)
from nnunetv2_smaformer.pretrained.swin import (
    OFFICIAL_FILENAME,
    OFFICIAL_URL,
    PRETRAINED_ENV,
    SwinWeights,
    fetch_timm_weights,
    swin_weights,
)
from nnunetv2_smaformer.training.lr_scheduler import WarmupCosineLRScheduler
from nnunetv2_smaformer.whole_slice.loader import whole_slice_loaders
from nnunetv2_smaformer.whole_slice.plans import median_depth, training_patch, whole_slice_size

PATCH_SIZE: tuple[int, int] = (256, 256)
# Network outputs: full resolution, then the decoder stages at strides 4, 8, 16.
DEEP_SUPERVISION_SCALES: tuple[tuple[float, float], ...] = ((1.0, 1.0), (0.25, 0.25), (0.125, 0.125), (0.0625, 0.0625))
# nnU-Net's experiment planner: a batch sees at most 5 % of the dataset's voxels, and never fewer than 2 samples.
MAX_DATASET_COVERED = 0.05
MIN_BATCH_SIZE = 2


def approximate_dataset_voxels(plans_manager: PlansManager, configuration: str, num_training: int) -> float:
    """Voxels of the whole training set at ``configuration``'s resolution as nnU-Net's planner estimates them: the
    median slice count times the configuration's median slice, times the cases."""
    in_plane = plans_manager.get_configuration(configuration).median_image_size_in_voxels[-2:]
    return median_depth(plans_manager.plans) * float(np.prod(in_plane, dtype=np.float64)) * num_training


def capped_batch_size(wanted: int, dataset_voxels: float, patch_size: Sequence[int]) -> int:
    """nnU-Net's small-dataset cap: ``max(min(wanted, round(5 % of voxels / patch voxels)), 2)``."""
    cap = round(dataset_voxels * MAX_DATASET_COVERED / float(np.prod(patch_size, dtype=np.float64)))
    return max(min(wanted, cap), MIN_BATCH_SIZE)


def unwrap_network(network: nn.Module) -> nn.Module:
    """The plain module under DDP and ``torch.compile`` wrappers."""
    if isinstance(network, DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network


def weight_decay_groups(network: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's parameter groups, decayed first: timm's rule (norms, biases and the network's ``no_weight_decay()``
    names are not decayed, Swin's own recipe) on the plain module under DDP and ``torch.compile`` wrappers."""
    from timm.optim import param_groups_weight_decay

    network = unwrap_network(network)
    no_decay = getattr(network, "no_weight_decay", set)()
    groups = param_groups_weight_decay(network, weight_decay, no_weight_decay_list=sorted(no_decay))
    # timm lists the no-decay group first; checkpoints of this trainer hold the optimiser's groups decayed first.
    return groups[::-1]


class TrainingBudget:
    """Training length and mirroring as class attributes, for any nnU-Net trainer it is mixed in before.

    ``None`` keeps nnU-Net's defaults (1000 epochs x 250 iterations, 50 validation iterations).
    """

    epochs: ClassVar[int | None] = None
    iterations_per_epoch: ClassVar[int | None] = None
    val_iterations_per_epoch: ClassVar[int | None] = None
    #: Mirroring augmentation and test-time mirroring (nnU-Net's default: on).
    mirroring: ClassVar[bool] = True

    # nnU-Net records the __init__ arguments by name for its checkpoints: keep the signature explicit.
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.epochs is not None:
            self.num_epochs = self.epochs
        if self.iterations_per_epoch is not None:
            self.num_iterations_per_epoch = self.iterations_per_epoch
        if self.val_iterations_per_epoch is not None:
            self.num_val_iterations_per_epoch = self.val_iterations_per_epoch

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, mirror_axes = (
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size())
        if not self.mirroring:
            mirror_axes = self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, mirror_axes


class nnUNetTrainerSMAFormerV2(TrainingBudget, nnUNetTrainer):
    """SMAFormerV2 on nnU-Net's 2D configuration. Variants override the class attributes only."""

    #: Extra ``SMAFormerV2`` constructor arguments (window, edge head, stochastic depth).
    network_kwargs: ClassVar[dict[str, Any]] = {}
    #: Training patch, written into the plans; the seed's 256x256.
    training_patch_size: ClassVar[tuple[int, int]] = PATCH_SIZE
    #: Initialise the encoder from ImageNet Swin-T (``$SMAFORMER_SWIN_WEIGHTS`` or timm's pretrained weights).
    use_pretrained: ClassVar[bool] = True
    #: The original's batch size, before nnU-Net's small-dataset cap.
    max_batch_size: ClassVar[int] = 28
    initial_lr_adamw: ClassVar[float] = 3e-4
    adamw_weight_decay: ClassVar[float] = 1e-2
    warmup_fraction: ClassVar[float] = 0.02
    grad_clip_norm: ClassVar[float] = GRAD_CLIP_NORM
    #: ``"auto"`` (CUDA: bf16 autocast where the device supports it, else fp16 with nnU-Net's GradScaler; the CPU:
    #: fp32), ``"bf16"``, ``"fp16"`` (nnU-Net's own behaviour) or ``"fp32"`` (no autocast).
    precision: ClassVar[str] = "auto"
    #: Training stops after this many consecutive steps with a non-finite loss or gradients.
    max_consecutive_nonfinite_steps: ClassVar[int] = 10

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),
    ):
        self._set_patch_and_batch_size(plans, configuration, dataset_json)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = self.initial_lr_adamw
        self.weight_decay = self.adamw_weight_decay
        self.train_precision = resolve_precision(self.precision, self.device)
        # nnU-Net makes a GradScaler for every CUDA run; only fp16 needs one.
        self.grad_scaler = torch.amp.GradScaler(self.device.type) if self.train_precision.grad_scaler else None
        self.nonfinite_guard: NonFiniteGuard | None = None
        self._epoch_step = 0
        # Set when nnU-Net restores weights from a checkpoint (--c, --val); ImageNet weights must not overwrite them.
        self._weights_restored = False

    @classmethod
    def _set_patch_and_batch_size(cls, plans: dict, configuration: str, dataset_json: dict) -> None:
        plans_manager = PlansManager(plans)
        if configuration not in plans_manager.available_configurations:
            raise RuntimeError(
                f"{cls.__name__}: configuration '{configuration}' is not in the plans "
                f"(available: {', '.join(plans_manager.available_configurations)})"
            )
        planned = plans_manager.get_configuration(configuration)
        if len(planned.patch_size) != 2:
            raise RuntimeError(
                f"{cls.__name__} is a 2D network: configuration '{configuration}' is "
                f"{len(planned.patch_size)}D (patch {planned.patch_size}). Train it with the '2d' configuration."
            )
        voxels = approximate_dataset_voxels(plans_manager, configuration, int(dataset_json["numTraining"]))
        patch = cls.patch_for(planned.configuration)
        config = plans["configurations"][configuration]
        config["patch_size"] = patch
        config["batch_size"] = capped_batch_size(cls.max_batch_size, voxels, patch)

    @classmethod
    def patch_for(cls, configuration: dict) -> list[int]:
        """The training patch on a configuration (nnU-Net's resolved dict): a whole-slice configuration's patch is
        the slice, elsewhere the trainer's own ``training_patch_size``."""
        return training_patch(configuration, cls.training_patch_size)

    @classmethod
    def build_network_architecture(
        cls,
        plans_manager: PlansManager,
        configuration_manager: ConfigurationManager,
        num_input_channels: int,
        num_output_channels: int,
        enable_deep_supervision: bool = True,
    ) -> nn.Module:
        """Build SMAFormerV2 with nnU-Net 2.8's signature; also called at inference (``enable_deep_supervision=False``).

        ``img_size`` (the Swin layout's reference size, which bounds the attention windows) is the patch the trainer
        trains: a whole-slice configuration's slice, else the trainer's own patch."""
        patch = cls.patch_for(configuration_manager.configuration) if configuration_manager is not None \
            else cls.training_patch_size
        return SMAFormerV2(
            in_channels=int(num_input_channels),
            num_classes=int(num_output_channels),
            deep_supervision=enable_deep_supervision,
            img_size=int(patch[0]),
            autocast_dtypes=inference_autocast_dtypes(cls.precision),
            **cls.network_kwargs,
        )

    def initialize(self) -> None:
        super().initialize()
        # While training, validation (nnU-Net autocasts it to fp16 on CUDA) runs in the training precision.
        network = unwrap_network(self.network)
        network.autocast_dtypes = training_autocast_dtypes(self.train_precision)
        self.nonfinite_guard = NonFiniteGuard(network, self.max_consecutive_nonfinite_steps, self.train_precision)

    def get_dataloaders(self):
        # A whole-slice configuration keeps every sample's slice whole (see whole_slice.loader).
        if whole_slice_size(self.configuration_manager.configuration) is None:
            return super().get_dataloaders()
        with whole_slice_loaders():
            return super().get_dataloaders()

    def _get_deep_supervision_scales(self) -> list[list[float]] | None:
        return [list(s) for s in DEEP_SUPERVISION_SCALES] if self.enable_deep_supervision else None

    @classmethod
    def warmup_epochs_of(cls, num_epochs: int) -> int:
        """Whole epochs of linear lr warm-up in a schedule of ``num_epochs``: ``warmup_fraction`` of it, rounded."""
        return min(int(round(cls.warmup_fraction * num_epochs)), num_epochs - 1)

    @property
    def warmup_epochs(self) -> int:
        return self.warmup_epochs_of(self.num_epochs)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(weight_decay_groups(self.network, self.weight_decay), lr=self.initial_lr)
        scheduler = WarmupCosineLRScheduler(optimizer, self.initial_lr, self.num_epochs, self.warmup_epochs)
        return optimizer, scheduler

    def train_step(self, batch: dict) -> dict:
        # nnU-Net's step in the trainer's precision, with the original's gradient clipping (1.0 instead of nnU-Net's
        # 12), skipped when the loss or the gradients are not finite.
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        if isinstance(target, list):
            target = [t.to(self.device, non_blocking=True) for t in target]
        else:
            target = target.to(self.device, non_blocking=True)

        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_guard.before_forward()
        with self.train_precision.autocast(self.device):
            loss = self.loss(self.network(data), target)
        taken = backward_and_step(loss, self.network.parameters(), self.optimizer, self.grad_scaler,
                                  self.grad_clip_norm, all_ranks=self.is_ddp)
        self._epoch_step += 1
        try:
            self.nonfinite_guard.after_step(taken, self.current_epoch, self._epoch_step)
        except NonFiniteTrainingError as err:
            self.print_to_log_file(f"ERROR: {err}")
            raise
        return {"loss": loss.detach().cpu().numpy() if taken else np.array(np.nan, dtype=np.float32)}

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.nonfinite_guard.start_epoch()
        self._epoch_step = 0

    def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
        # The epoch's train_loss is the mean of the steps that were taken (all ranks skip the same steps).
        taken = [output for output in train_outputs if np.all(np.isfinite(output["loss"]))]
        self.print_to_log_file(f"Non-finite training steps skipped: {self.nonfinite_guard.epoch_skipped} of "
                               f"{len(train_outputs)} ({self.train_precision.name})")
        super().on_train_epoch_end(taken or train_outputs)

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank == 0:
            bad = non_finite_tensors(unwrap_network(self.network).state_dict())
            if bad:
                raise NonFiniteTrainingError(f"not writing {filename}: the network holds non-finite values in "
                                             f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")
        super().save_checkpoint(filename)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        self._weights_restored = True

    def imagenet_weights(self) -> SwinWeights:
        """ImageNet Swin-T weights, read into memory: the file named by ``$SMAFORMER_SWIN_WEIGHTS`` or, when
        the variable is unset, timm's pretrained weights from the Hugging Face cache (downloaded once).
        A clear error when neither is usable."""
        value = os.environ.get(PRETRAINED_ENV, "").strip()
        no_pretrain = (
            "or train without ImageNet initialisation with a _noPretrain variant "
            "(e.g. -tr nnUNetTrainerSMAFormerV2_noPretrain)"
        )
        if not value:
            try:
                return fetch_timm_weights()
            except PretrainedWeightsError as err:
                raise PretrainedWeightsError(
                    f"{type(self).__name__} initialises its Swin-T encoder from ImageNet weights and "
                    f"{PRETRAINED_ENV} is not set: {err} Or {no_pretrain}."
                ) from err
        path = Path(value).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(
                f"{PRETRAINED_ENV}={value}: no such file. Download {OFFICIAL_FILENAME} from {OFFICIAL_URL} and set "
                f"{PRETRAINED_ENV}=/path/to/{OFFICIAL_FILENAME}, unset it to use timm's pretrained weights "
                f"from the Hugging Face cache, {no_pretrain}."
            )
        return swin_weights(path)

    def imagenet_initialisation_due(self) -> bool:
        """Whether on_train_start loads ImageNet weights: only for a fresh training. --c and --val restored
        weights from a checkpoint, and a trainer that was initialised before training started got nnU-Net's
        -pretrained_weights (nnUNetv2_train initialises it to load them); those weights must win."""
        return self.use_pretrained and not self._weights_restored and not self.was_initialized

    def on_train_start(self) -> None:
        # Read (or download) the weights before nnU-Net starts its data-loader workers: errors come first.
        weights = self.imagenet_weights() if self.imagenet_initialisation_due() else None
        super().on_train_start()
        precision = self.train_precision
        self.print_to_log_file(f"Precision: {precision.name}, because {precision.reason}. Validation steps run the "
                               f"network in it too; nnUNetv2_predict never in a less safe one.")
        if weights is not None:
            report = unwrap_network(self.network).load_pretrained(weights)
            self.print_to_log_file(f"ImageNet initialisation of the encoder:\n{report}")
