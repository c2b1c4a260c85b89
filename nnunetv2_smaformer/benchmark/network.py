"""Network-level speed: training-step time and inference throughput, measured side by side.

A training step is what nnU-Net runs per iteration: forward with deep supervision, nnU-Net's
Dice+CE deep-supervision loss, backward, gradient clipping, AdamW step. Inference is a
no-grad forward without deep supervision. Every configuration is measured in the same process
so that ratios are meaningful on a shared, noisy machine.
"""
from __future__ import annotations

import contextlib
import logging
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

# The authors' implementation, measured on this project's 2-core CPU machines (issue #2): their
# training step at batch 2, 256x256, took 3.1 to 3.3 s. Recorded here because their code is not shipped.
AUTHORS_CPU_TRAIN_STEP_S = (3.1, 3.3)


@dataclass
class Measurement:
    """Timings of one network configuration (seconds; throughput in images per second)."""

    name: str
    parameters: int
    batch_size: int
    train_step_s: List[float] = field(default_factory=list)
    inference_batch_s: List[float] = field(default_factory=list)
    peak_memory_mib: Optional[float] = None

    @property
    def train_step_median_s(self) -> float:
        return statistics.median(self.train_step_s)

    @property
    def inference_images_per_s(self) -> float:
        return self.batch_size / statistics.median(self.inference_batch_s)

    def to_json(self) -> dict:
        data = asdict(self)
        data["train_step_median_s"] = self.train_step_median_s
        data["inference_images_per_s"] = self.inference_images_per_s
        return data


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _deep_supervision_loss(num_outputs: int) -> nn.Module:
    """nnU-Net's training loss: Dice+CE on each output, weights 1/2^i with the last one 0, normalised."""
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    weights = np.array([1 / 2**i for i in range(num_outputs)])
    if num_outputs > 1:  # a single output (no deep supervision) keeps its weight
        weights[-1] = 0
    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                          weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    return DeepSupervisionWrapper(loss, weights / weights.sum())


def set_deep_supervision(model: nn.Module, enabled: bool) -> None:
    """Switch deep supervision the way nnU-Net's trainer does (``decoder.deep_supervision``); a network
    without that switch (a custom architecture) is left as it is."""
    decoder = getattr(model, "decoder", None)
    if decoder is not None and hasattr(decoder, "deep_supervision"):
        decoder.deep_supervision = enabled


def _as_list(outputs) -> List[torch.Tensor]:
    # With deep supervision on, SMAFormerV2 returns 4 maps and nnU-Net's U-Nets one per decoder stage;
    # a network without deep supervision returns a single tensor.
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _targets(outputs: List[torch.Tensor], num_classes: int, generator: torch.Generator) -> List[torch.Tensor]:
    full = torch.randint(0, num_classes, (outputs[0].shape[0], 1, *outputs[0].shape[2:]), generator=generator)
    targets = []
    for out in outputs:
        step_h, step_w = full.shape[-2] // out.shape[-2], full.shape[-1] // out.shape[-1]
        targets.append(full[..., ::step_h, ::step_w].float().to(out.device))
    return targets


def measure(
    name: str,
    build: Callable[[], nn.Module],
    in_channels: int,
    num_classes: int,
    batch_size: int = 2,
    img_size: int = 256,
    steps: int = 5,
    warmup: int = 2,
    device: torch.device = torch.device("cpu"),
    amp_dtype: Optional[torch.dtype] = None,
    compile_model: bool = False,
) -> Measurement:
    """Time ``steps`` training steps and inference batches of the network ``build()`` returns.

    Input: random ``[batch_size, in_channels, img_size, img_size]``; targets: random labels in
    ``[0, num_classes)`` downsampled to each deep-supervision output. Works for any network whose
    output count the loss can follow (SMAFormerV2's 4 maps, nnU-Net's one per decoder stage).
    Peak memory is recorded on CUDA only (``torch.cuda.max_memory_allocated``).
    """
    torch.manual_seed(0)
    model = build().to(device)
    parameters = sum(p.numel() for p in model.parameters())
    runner: nn.Module = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(batch_size, in_channels, img_size, img_size, generator=generator).to(device)
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    result = Measurement(name=name, parameters=parameters, batch_size=batch_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    model.train()
    set_deep_supervision(model, True)
    loss_fn = None
    targets = None
    for i in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            outputs = _as_list(runner(data))
            if loss_fn is None:
                loss_fn = _deep_supervision_loss(len(outputs))
                targets = _targets(outputs, num_classes, generator)
            loss = loss_fn(outputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        _sync(device)
        if i >= warmup:
            result.train_step_s.append(time.perf_counter() - start)

    model.eval()
    set_deep_supervision(model, False)
    with torch.no_grad():
        for i in range(warmup + steps):
            _sync(device)
            start = time.perf_counter()
            with autocast:
                runner(data)
            _sync(device)
            if i >= warmup:
                result.inference_batch_s.append(time.perf_counter() - start)
    if device.type == "cuda":
        result.peak_memory_mib = torch.cuda.max_memory_allocated(device) / 2**20
    logger.info("%s: training step %.3f s (median of %d), inference %.2f images/s",
                name, result.train_step_median_s, steps, result.inference_images_per_s)
    return result


def environment(device: torch.device) -> Dict[str, object]:
    info: Dict[str, object] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        info["device"] = torch.cuda.get_device_name(device)
    else:
        info["device"] = f"CPU ({torch.get_num_threads()} threads)"
    return info
