"""Network-level speed: training-step time and inference throughput, measured side by side.

A training step is what nnU-Net runs per iteration: forward, nnU-Net's Dice+CE loss (over the
deep-supervision outputs where the configuration trains with them), backward, gradient clipping,
AdamW step. Inference is a no-grad forward without deep supervision. Every configuration is
measured in the same process, their repetitions interleaved (one step of each in turn), so that
ratios are meaningful on a shared, noisy machine: a slow spell hits all of them alike.
"""
from __future__ import annotations

import contextlib
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnunetv2_smaformer.machine import machine_info
from nnunetv2_smaformer.nnunet_bridge import set_deep_supervision
from nnunetv2_smaformer.precision import GRAD_CLIP_NORM, backward_and_step

logger = logging.getLogger(__name__)

@dataclass
class Measurement:
    """Timings of one network configuration (seconds; throughput in images per second).

    ``peak_memory_mib`` (CUDA only) is the process-wide peak of ``torch.cuda.max_memory_allocated``
    during this configuration's steps; with several configurations it includes the others' resident
    weights and optimiser states.
    """

    name: str
    parameters: int
    batch_size: int
    train_step_s: list[float] = field(default_factory=list)
    inference_batch_s: list[float] = field(default_factory=list)
    peak_memory_mib: float | None = None
    #: Training steps skipped because their loss or gradients were not finite (the trainer's rule).
    nonfinite_steps: int = 0
    #: dtype of the network's output in inference (shows the autocast that ran).
    inference_output_dtype: str | None = None

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


def deep_supervision_loss(num_outputs: int) -> nn.Module:
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


def _as_list(outputs) -> list[torch.Tensor]:
    # With deep supervision on, SMAFormerV2 returns 4 maps and nnU-Net's U-Nets one per decoder stage;
    # a network without deep supervision returns a single tensor.
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _targets(outputs: list[torch.Tensor], num_classes: int, generator: torch.Generator) -> list[torch.Tensor]:
    full = torch.randint(0, num_classes, (outputs[0].shape[0], 1, *outputs[0].shape[2:]), generator=generator)
    targets = []
    for out in outputs:
        step_h, step_w = full.shape[-2] // out.shape[-2], full.shape[-1] // out.shape[-1]
        targets.append(full[..., ::step_h, ::step_w].float().to(out.device))
    return targets


@dataclass
class BenchmarkSettings:
    """What ``smaformer benchmark-network`` measures.

    Args:
        in_channels: Input channels of SMAFormerV2 as nnU-Net trains it (1 for CT).
        baseline: Also time the window-7 configuration with timm's unfused attention.
        compile_model: Also time SMAFormerV2 under ``torch.compile``.
        reference: The authors' ``SMAFormerV2.py``; its network is timed next to ours.
        reference_windows: One reference configuration per Swin window (7 is its default).
    """

    batch_size: int = 2
    img_size: int = 256
    in_channels: int = 1
    num_classes: int = 9
    steps: int = 5
    warmup: int = 2
    device: torch.device = torch.device("cpu")
    amp_dtype: torch.dtype | None = None
    compile_model: bool = False
    baseline: bool = True
    reference: Path | None = None
    reference_windows: Sequence[int] = (7,)


@dataclass(frozen=True)
class NetworkConfig:
    """One network to time and how it is trained.

    Args:
        name: Key in the report's ``configs``.
        build: Returns the network (called once, after the random seed is reset).
        in_channels: Input channels of the random batch.
        deep_supervision: Train on every output the network returns with deep supervision switched on,
            as nnU-Net does; otherwise the loss sees the one full-resolution output.
        compile_model: Run the network under ``torch.compile``.
    """

    name: str
    build: Callable[[], nn.Module]
    in_channels: int
    deep_supervision: bool = True
    compile_model: bool = False


class StepRunner:
    """A built network with its optimiser, random batch, loss and targets; runs one timed step at a time."""

    def __init__(self, config: NetworkConfig, settings: BenchmarkSettings) -> None:
        torch.manual_seed(0)
        self.config = config
        self.device = device = settings.device
        self.num_classes = settings.num_classes
        batch_size, img_size = settings.batch_size, settings.img_size
        self.model = config.build().to(device)
        self.runner: nn.Module = torch.compile(self.model) if config.compile_model else self.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=3e-4)
        self.generator = torch.Generator().manual_seed(0)
        self.data = torch.randn(batch_size, config.in_channels, img_size, img_size,
                                generator=self.generator).to(device)
        self.autocast = settings.amp_dtype
        # fp16 trains with a GradScaler, as nnU-Net does; bf16 and fp32 need none.
        self.grad_scaler = torch.amp.GradScaler(device.type) if settings.amp_dtype is torch.float16 else None
        self.loss_fn: nn.Module | None = None
        self.targets: list[torch.Tensor] | None = None
        self.result = Measurement(name=config.name, parameters=sum(p.numel() for p in self.model.parameters()),
                                  batch_size=batch_size)

    def _autocast(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _timed(self, fn: Callable[[], None]) -> float:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        _sync(self.device)
        start = time.perf_counter()
        fn()
        _sync(self.device)
        elapsed = time.perf_counter() - start
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            self.result.peak_memory_mib = max(peak, self.result.peak_memory_mib or 0.0)
        return elapsed

    def _train_step(self) -> None:
        self.model.train()
        set_deep_supervision(self.model, self.config.deep_supervision)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            outputs = _as_list(self.runner(self.data))
            if self.loss_fn is None:
                self.loss_fn = deep_supervision_loss(len(outputs))
                self.targets = _targets(outputs, self.num_classes, self.generator)
            loss = self.loss_fn(outputs, self.targets)
        if not backward_and_step(loss, self.model.parameters(), self.optimizer, self.grad_scaler,
                                  clip_norm=GRAD_CLIP_NORM):
            self.result.nonfinite_steps += 1

    def _inference_batch(self) -> None:
        self.model.eval()
        set_deep_supervision(self.model, False)
        with torch.no_grad(), self._autocast():
            self.result.inference_output_dtype = str(_as_list(self.runner(self.data))[0].dtype).replace("torch.", "")

    def train_step(self, record: bool) -> None:
        elapsed = self._timed(self._train_step)
        if record:
            self.result.train_step_s.append(elapsed)

    def inference_batch(self, record: bool) -> None:
        elapsed = self._timed(self._inference_batch)
        if record:
            self.result.inference_batch_s.append(elapsed)


def measure_interleaved(configs: Sequence[NetworkConfig], settings: BenchmarkSettings) -> dict[str, Measurement]:
    """Time ``steps`` training steps, then ``steps`` inference batches, of every configuration, interleaved.

    Repetition ``i`` runs one step of each configuration, starting with configuration ``i mod n``, so
    no configuration always runs first. Uses the batch size, image size, class count, step counts,
    device and autocast dtype of ``settings``. Input: random ``[batch_size, in_channels, img_size, img_size]``;
    targets: random labels in ``[0, num_classes)``, downsampled to each output the loss sees.
    """
    runners = [StepRunner(c, settings) for c in configs]
    for phase in ("train_step", "inference_batch"):
        for i in range(settings.warmup + settings.steps):
            shift = i % len(runners)
            for runner in runners[shift:] + runners[:shift]:
                getattr(runner, phase)(record=i >= settings.warmup)
    results = {r.config.name: r.result for r in runners}
    for m in results.values():
        logger.info("%s: training step %.3f s (median of %d), inference %.2f images/s",
                    m.name, m.train_step_median_s, settings.steps, m.inference_images_per_s)
    return results


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
    amp_dtype: torch.dtype | None = None,
    compile_model: bool = False,
) -> Measurement:
    """Time one network trained with deep supervision (see :func:`measure_interleaved`).

    Works for any network whose output count the loss can follow (SMAFormerV2's 4 maps, nnU-Net's one
    per decoder stage). Peak memory is recorded on CUDA only.
    """
    config = NetworkConfig(name, build, in_channels, deep_supervision=True, compile_model=compile_model)
    settings = BenchmarkSettings(batch_size=batch_size, img_size=img_size, num_classes=num_classes, steps=steps,
                                 warmup=warmup, device=device, amp_dtype=amp_dtype)
    return measure_interleaved([config], settings)[name]


# Ours trained like the reference: its 3 input channels and the loss on its one full-resolution output.
SINGLE_OUTPUT_CONFIG = "smaformer_v2_single_output"
REFERENCE_INPUT_CHANNELS = 3


def benchmark_configs(settings: BenchmarkSettings) -> list[NetworkConfig]:
    """The configurations to time, ours first; the reference file is imported here (errors before any timing)."""
    from nnunetv2_smaformer.network.smaformer import SMAFormerV2
    from nnunetv2_smaformer.speed.reference import reference_builder, reference_config_name

    def ours(in_channels: int) -> Callable[[], nn.Module]:
        return lambda: SMAFormerV2(in_channels, settings.num_classes, img_size=settings.img_size)

    def unoptimised() -> SMAFormerV2:
        model = SMAFormerV2(settings.in_channels, settings.num_classes, window_size=7, img_size=settings.img_size)
        for block in model.encoder.swin_blocks():
            block.attn.fused_attn = False
        return model

    configs = [NetworkConfig("smaformer_v2", ours(settings.in_channels), settings.in_channels)]
    if settings.compile_model:
        configs.append(NetworkConfig("smaformer_v2_compiled", ours(settings.in_channels), settings.in_channels,
                                     compile_model=True))
    if settings.baseline:
        configs.append(NetworkConfig("window7_unfused", unoptimised, settings.in_channels))
    if settings.reference is not None:
        configs.append(NetworkConfig(SINGLE_OUTPUT_CONFIG, ours(REFERENCE_INPUT_CHANNELS), REFERENCE_INPUT_CHANNELS,
                                     deep_supervision=False))
        for window in dict.fromkeys(settings.reference_windows):
            build = reference_builder(settings.reference, settings.img_size, settings.num_classes, window)
            configs.append(NetworkConfig(reference_config_name(window), build, REFERENCE_INPUT_CHANNELS,
                                         deep_supervision=False))
    return configs


def run_benchmark(settings: BenchmarkSettings) -> dict:
    """Measure every configuration in this process, interleaved, and return the JSON report.

    Speed-ups are ratios of training-step medians measured in this run: ``train_speedup_vs_window7_unfused``
    against ``smaformer_v2``; ``train_speedup_vs_reference`` (and ``..._reference_window{N}``) against
    ``smaformer_v2_single_output``, which is trained exactly like the reference.
    """
    configs = benchmark_configs(settings)
    results = measure_interleaved(configs, settings)
    report: dict = {
        "environment": machine_info(str(settings.device)),
        "settings": {
            "batch_size": settings.batch_size, "img_size": settings.img_size, "in_channels": settings.in_channels,
            "num_classes": settings.num_classes, "steps": settings.steps, "warmup": settings.warmup,
            "amp": str(settings.amp_dtype).replace("torch.", "") if settings.amp_dtype else "none",
            "reference": str(settings.reference) if settings.reference is not None else None,
        },
        "configs": {name: m.to_json() for name, m in results.items()},
    }
    for name, config in zip(results, configs):
        report["configs"][name]["deep_supervision"] = config.deep_supervision
        report["configs"][name]["in_channels"] = config.in_channels
    if "window7_unfused" in results:
        report["train_speedup_vs_window7_unfused"] = (results["window7_unfused"].train_step_median_s
                                                      / results["smaformer_v2"].train_step_median_s)
    for name in results:
        if name.startswith("reference"):
            ours = results[SINGLE_OUTPUT_CONFIG]
            report[f"train_speedup_vs_{name}"] = results[name].train_step_median_s / ours.train_step_median_s
            report[f"inference_speedup_vs_{name}"] = (ours.inference_images_per_s
                                                      / results[name].inference_images_per_s)
    return report


def format_report(report: dict) -> list[str]:
    """The report as the lines ``smaformer benchmark-network`` prints."""
    s = report["settings"]
    lines = [f"{report['environment']['device']}, batch {s['batch_size']}, {s['img_size']}x{s['img_size']}, "
             f"amp {s['amp']}:"]
    for name, m in report["configs"].items():
        memory = f", peak {m['peak_memory_mib']:.0f} MiB" if m["peak_memory_mib"] is not None else ""
        lines.append(f"  {name:<28} train step {m['train_step_median_s']:6.3f} s ({1 / m['train_step_median_s']:.2f} "
                     f"steps/s, {m['nonfinite_steps']} non-finite)   inference {m['inference_images_per_s']:7.2f} "
                     f"img/s{memory}")
    lines.extend(f"  {key}: {value:.2f}x" for key, value in report.items() if "_speedup_vs_" in key)
    return lines
