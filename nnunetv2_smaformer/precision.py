"""Mixed precision a Swin transformer survives, and training steps that survive a non-finite loss.

A leaf module (torch and the package's errors only): the trainer, the network and the benchmarks use it, also on a
machine without nnU-Net's training stack.

* :func:`resolve_precision`: what a trainer's ``precision`` setting means on a device. ``"auto"`` trains on CUDA
  under bf16 autocast where the device supports it (bf16 has fp32's range, so no GradScaler) and under fp16 with
  nnU-Net's GradScaler where it does not; ``"fp16"`` is nnU-Net's own behaviour; ``"bf16"``; ``"fp32"`` never
  autocasts. On the CPU ``"auto"`` is nnU-Net's fp32; an explicit ``"bf16"`` or ``"fp16"`` autocasts there too.
* :func:`inference_autocast_dtypes`: which autocast dtypes the network may run under after training in a precision
  (nnU-Net's validation and predictor autocast to fp16 on CUDA; the network switches to a safe dtype itself).
* :func:`backward_and_step`: backward, gradient clipping and the optimiser step of one training step, skipped when
  the loss or the gradient norm is not finite; :class:`NonFiniteGuard` counts such steps, restores what the forward
  pass changed (BatchNorm statistics) and stops a run of them with
  :class:`~nnunetv2_smaformer.errors.NonFiniteTrainingError`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from nnunetv2_smaformer.errors import NonFiniteTrainingError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
#: The gradient-norm threshold of a training step (the original's): the trainer's default, benchmark-network's step.
GRAD_CLIP_NORM = 1.0
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


@dataclass(frozen=True)
class Precision:
    """A resolved precision: its name, the autocast dtype (``None``: fp32, no autocast), whether a GradScaler is
    needed, and why it was chosen (for the training log)."""

    name: str
    autocast_dtype: torch.dtype | None
    grad_scaler: bool
    reason: str

    def autocast(self, device: torch.device) -> AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)


def autocast_supported(device_type: str, dtype: torch.dtype) -> bool:
    """Whether autocast to ``dtype`` runs on this device type: bf16 on CUDA where the device has it, fp16 on any
    CUDA device, both on the CPU."""
    if device_type == "cuda":
        return torch.cuda.is_available() and (dtype is not torch.bfloat16 or torch.cuda.is_bf16_supported())
    return device_type == "cpu" and dtype in (torch.bfloat16, torch.float16)


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """The precision a trainer with ``precision = requested`` trains in on ``device``."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested == "auto":
        if device.type != "cuda":
            return Precision("fp32", None, False, f"nnU-Net trains without autocast on {device.type}")
        if autocast_supported("cuda", torch.bfloat16):
            return Precision("bf16", torch.bfloat16, False,
                             "the CUDA device supports bf16 (fp32's range: no GradScaler, no fp16 overflow)")
        return Precision("fp16", torch.float16, True, "the CUDA device has no bf16: fp16 with nnU-Net's GradScaler")
    if requested == "fp32":
        return Precision("fp32", None, False, "set by the trainer (no autocast)")
    return Precision(requested, _DTYPES[requested], requested == "fp16",
                     f"set by the trainer ({'with' if requested == 'fp16' else 'no'} GradScaler)")


def inference_autocast_dtypes(requested: str) -> tuple[torch.dtype, ...] | None:
    """Autocast dtypes the network may run under when built by a trainer with ``precision = requested``, outside
    training (nnU-Net's predictor): never less safe than any precision that setting trains in.

    ``"auto"`` trains in bf16 or fp16, so bf16 (or fp32 where the device has no bf16) is at least as safe as either;
    ``None`` (``"fp16"``) allows any.
    """
    return {"auto": (torch.bfloat16,), "bf16": (torch.bfloat16,), "fp16": None, "fp32": ()}[requested]


def training_autocast_dtypes(precision: Precision) -> tuple[torch.dtype, ...] | None:
    """Autocast dtypes the network may run under while a trainer trains in ``precision`` (its validation steps
    autocast to fp16 on CUDA): the training dtype itself, or fp32 only."""
    return () if precision.autocast_dtype is None else (precision.autocast_dtype,)


def backward_and_step(loss: torch.Tensor, parameters: Iterable[nn.Parameter], optimizer: torch.optim.Optimizer,
                      grad_scaler: torch.amp.GradScaler | None, clip_norm: float, all_ranks: bool = False) -> bool:
    """Backward, clipping to ``clip_norm`` and the optimiser step; returns whether the step was taken.

    The step is skipped (no weight and no optimiser state changes) when the loss or the gradients' total norm is
    not finite. Backward always runs, so that DDP's gradient all-reduce stays in step across ranks; with
    ``all_ranks`` the decision is agreed over all ranks (any rank's non-finite value skips the step everywhere).
    Under a GradScaler the gradients are unscaled before clipping and the scaler is updated either way (a skipped
    overflow lowers its scale, as nnU-Net's GradScaler does).
    """
    parameters = [p for p in parameters if p.requires_grad]
    if grad_scaler is not None:
        grad_scaler.scale(loss).backward()
        grad_scaler.unscale_(optimizer)
    else:
        loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
    finite = (torch.isfinite(loss.detach()) & torch.isfinite(norm)).to(torch.int32)
    if all_ranks:
        import torch.distributed as dist

        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    taken = bool(finite.item())
    if taken:
        if grad_scaler is not None:
            grad_scaler.step(optimizer)
        else:
            optimizer.step()
    if grad_scaler is not None:
        grad_scaler.update()
    return taken


class NonFiniteGuard:
    """Counts skipped training steps and undoes what their forward pass changed.

    ``before_forward()`` copies the network's BatchNorm running statistics (a forward pass in training mode updates
    them, and a non-finite batch would make them non-finite); ``after_step(taken, ...)`` restores them for a skipped
    step, counts it, and raises :class:`NonFiniteTrainingError` after ``max_consecutive`` skipped steps in a row.
    """

    def __init__(self, network: nn.Module, max_consecutive: int, precision: Precision) -> None:
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.precision = precision
        self.buffers: list[torch.Tensor] = [
            buffer for module in network.modules() if isinstance(module, nn.modules.batchnorm._NormBase)
            for buffer in (module.running_mean, module.running_var, module.num_batches_tracked) if buffer is not None]
        self._saved: list[torch.Tensor] = []
        self.consecutive = 0
        self.epoch_skipped = 0
        self.total_skipped = 0

    def before_forward(self) -> None:
        self._saved = [buffer.clone() for buffer in self.buffers]

    def start_epoch(self) -> None:
        self.epoch_skipped = 0

    def after_step(self, taken: bool, epoch: int, step: int) -> None:
        if taken:
            self.consecutive = 0
            return
        with torch.no_grad():
            for buffer, saved in zip(self.buffers, self._saved):
                buffer.copy_(saved)
        self.consecutive += 1
        self.epoch_skipped += 1
        self.total_skipped += 1
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteTrainingError(
                f"training stopped at epoch {epoch}, step {step} of the epoch: {self.consecutive} consecutive "
                f"training steps had a non-finite loss or gradients under {self.precision.name} precision "
                f"({self.precision.reason}); no weight was changed by them. Try -tr nnUNetTrainerSMAFormerV2_fp32 "
                "(no autocast) or a lower learning rate (a variant with a smaller initial_lr_adamw), and check the "
                "data for NaN or extreme values.")


def non_finite_tensors(state: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict holding NaN or infinity."""
    return [name for name, value in state.items()
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())]
