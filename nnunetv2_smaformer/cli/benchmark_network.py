"""``smaformer benchmark-network``: training-step time and inference throughput, side by side."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger("smaformer.benchmark")

AMP_CHOICES = ("none", "bf16", "fp16")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark-network",
        help="time SMAFormerV2's training step and inference (JSON)",
        description="Measure SMAFormerV2's training step (forward with deep supervision, nnU-Net's Dice+CE "
        "loss, backward, clipping, AdamW) and inference throughput, next to the unoptimised configuration "
        "(window 7, timm's default attention) in the same run.",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("benchmark_network.json"), help="JSON file to write")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions first")
    parser.add_argument("--amp", choices=AMP_CHOICES, default="none", help="autocast dtype (GPU: bf16 recommended)")
    parser.add_argument("--compile", action="store_true", help="also measure under torch.compile")
    parser.add_argument("--no-baseline", action="store_true", help="skip the window-7 unfused configuration")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import statistics

    import torch

    from nnunetv2_smaformer.benchmark.network import AUTHORS_CPU_TRAIN_STEP_S, environment, measure
    from nnunetv2_smaformer.errors import SMAFormerError
    from nnunetv2_smaformer.network.smaformer import SMAFormerV2

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SMAFormerError(f"--device {args.device}: CUDA is not available on this machine")
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]

    def ours() -> SMAFormerV2:
        return SMAFormerV2(args.in_channels, args.num_classes, img_size=args.img_size)

    def unoptimised() -> SMAFormerV2:
        model = SMAFormerV2(args.in_channels, args.num_classes, window_size=7, img_size=args.img_size)
        for block in model.encoder.swin_blocks():
            block.attn.fused_attn = False
        return model

    configs = [("smaformer_v2", ours, False)]
    if args.compile:
        configs.append(("smaformer_v2_compiled", ours, True))
    if not args.no_baseline:
        configs.append(("window7_unfused", unoptimised, False))
    common = dict(in_channels=args.in_channels, num_classes=args.num_classes, batch_size=args.batch_size,
                  img_size=args.img_size, steps=args.steps, warmup=args.warmup, device=device, amp_dtype=amp_dtype)
    results = {name: measure(name, build, compile_model=compiled, **common) for name, build, compiled in configs}

    ours_step = results["smaformer_v2"].train_step_median_s
    report = {
        "environment": environment(device),
        "settings": {k: getattr(args, k) for k in ("batch_size", "img_size", "in_channels", "num_classes",
                                                    "steps", "warmup", "amp")},
        "configs": {name: m.to_json() for name, m in results.items()},
    }
    if "window7_unfused" in results:
        report["train_speedup_vs_window7_unfused"] = results["window7_unfused"].train_step_median_s / ours_step
    if device.type == "cpu" and (args.batch_size, args.img_size) == (2, 256):
        authors = statistics.mean(AUTHORS_CPU_TRAIN_STEP_S)
        report["authors_train_step_s_recorded"] = list(AUTHORS_CPU_TRAIN_STEP_S)
        report["train_speedup_vs_authors_recorded"] = authors / ours_step
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))

    lines = [f"{report['environment']['device']}, batch {args.batch_size}, {args.img_size}x{args.img_size}, "
             f"amp {args.amp}:"]
    for name, m in results.items():
        memory = f", peak {m.peak_memory_mib:.0f} MiB" if m.peak_memory_mib is not None else ""
        lines.append(f"  {name:<24} train step {m.train_step_median_s:6.3f} s   "
                     f"inference {m.inference_images_per_s:7.2f} img/s{memory}")
    for key in ("train_speedup_vs_window7_unfused", "train_speedup_vs_authors_recorded"):
        if key in report:
            lines.append(f"  {key}: {report[key]:.2f}x")
    lines.append(f"written to {args.output}")
    print("\n".join(lines))
    return 0
