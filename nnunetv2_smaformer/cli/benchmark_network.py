"""``smaformer benchmark-network``: training-step time and inference throughput, side by side."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nnunetv2_smaformer.cli.arguments import add_output, device, multiple_of_stride, non_negative_int, positive_int
from nnunetv2_smaformer.cli.output import print_result

AMP_CHOICES = ("none", "bf16", "fp16")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark-network",
        help="time SMAFormerV2's training step and inference (JSON)",
        description="Measure SMAFormerV2's training step (forward with deep supervision, nnU-Net's Dice+CE "
        "loss, backward, clipping, AdamW) and inference throughput, next to the unoptimised configuration "
        "(window 7, timm's default attention) and, with --reference, the authors' implementation, all in "
        "the same process with their repetitions interleaved.",
    )
    add_output(parser, "JSON file to write (default: benchmark_network.json)", required=False,
               default=Path("benchmark_network.json"))
    parser.add_argument("--device", type=device, default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--batch-size", type=positive_int, default=2)
    parser.add_argument("--img-size", type=multiple_of_stride, default=256)
    parser.add_argument("--in-channels", type=positive_int, default=1)
    parser.add_argument("--num-classes", type=positive_int, default=9)
    parser.add_argument("--steps", type=positive_int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed repetitions first")
    parser.add_argument("--amp", choices=AMP_CHOICES, default="none",
                        help="autocast dtype; fp16 trains with a GradScaler, as nnU-Net does (GPU: bf16 recommended)")
    parser.add_argument("--compile", action="store_true", help="also measure under torch.compile")
    parser.add_argument("--no-baseline", action="store_true", help="skip the window-7 unfused configuration")
    parser.add_argument(
        "--reference", type=Path, metavar="FILE",
        help="the authors' SMAFormerV2.py: its network (3 input channels, one output) is timed against ours "
        "trained the same way (3 input channels, loss on the full-resolution output only)")
    parser.add_argument("--reference-window", type=positive_int, nargs="+", default=[7], metavar="N",
                        help="Swin window(s) to build the reference with (default: 7, its own; 8 needs no padding)")
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace):
    """The :class:`~nnunetv2_smaformer.speed.step_timing.BenchmarkSettings` the parsed options ask for."""
    import torch

    from nnunetv2_smaformer.speed.step_timing import BenchmarkSettings

    return BenchmarkSettings(
        batch_size=args.batch_size, img_size=args.img_size, in_channels=args.in_channels,
        num_classes=args.num_classes, steps=args.steps, warmup=args.warmup, device=torch.device(args.device),
        amp_dtype={"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp],
        compile_model=args.compile, baseline=not args.no_baseline, reference=args.reference,
        reference_windows=tuple(args.reference_window),
    )


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.speed.step_timing import format_report, run_benchmark

    report = run_benchmark(settings_from_args(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print_result([*format_report(report), f"written to {args.output}"])
    return 0
