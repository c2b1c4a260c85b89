"""``smaformer benchmark-scale``: SMAFormerV2 and stock nnU-Net 2d at Synapse's geometry, side by side."""
from __future__ import annotations

import argparse

from nnunetv2_smaformer.cli.arguments import add_output, dataset_id, device
from nnunetv2_smaformer.cli.output import print_result

#: Options that override the preset's sizes; ``ScaleSettings.validate`` checks them together.
SIZE_OPTIONS = ("size", "slices", "train_cases", "test_cases", "loader_batches", "train_warmup", "train_steps",
                "whole_slice_size", "predict_slices")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark-scale",
        help="data loading, training and prediction speed at Synapse's geometry (JSON + Markdown)",
        description="Write a phantom with Synapse's geometry (512x512 slices, 0.76 mm in-plane, 3 mm slices, "
        ">= 80 slices a case, 8 organs), plan and preprocess it with nnU-Net (2d), then measure SMAFormerV2 and "
        "stock nnU-Net in the same run (SMAFormerV2 on 2d and on 2d_wholeslice, the original's protocol, which "
        "smaformer add-configuration adds; stock nnU-Net on 2d): data-loader throughput with nnU-Net's "
        "augmentation at each trainer's planned batch size, training iterations per second, nnUNetv2_predict "
        "seconds per volume (with and without mirroring, larger steps, a whole-slice patch) and peak memory. "
        "Writes OUT/benchmark_scale.json and OUT/benchmark_scale.md. The defaults are sized for one GPU, --quick "
        "for a 2-core CPU.",
    )
    add_output(parser, "folder for the phantom, nnU-Net's folders, logs and the report", metavar="DIR")
    parser.add_argument("--device", type=device, default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="fewer cases and iterations, sized for a 2-core CPU")
    parser.add_argument("--nnunet-benchmark", action="store_true",
                        help="also run nnU-Net's _Benchmark_5epochs trainers for both methods (CUDA only)")
    parser.add_argument("--dataset-id", type=dataset_id, default=990, help="dataset id inside DIR (default 990)")
    sizes = parser.add_argument_group("sizes (override the preset; smaller than Synapse is a code-path check only)")
    sizes.add_argument("--size", type=int, help="in-plane size (Synapse: 512)")
    sizes.add_argument("--slices", type=int, help="slices a case (Synapse: >= 80)")
    sizes.add_argument("--train-cases", type=int)
    sizes.add_argument("--test-cases", type=int)
    sizes.add_argument("--loader-batches", type=int)
    sizes.add_argument("--train-warmup", type=int)
    sizes.add_argument("--train-steps", type=int)
    sizes.add_argument("--whole-slice-size", type=int, help="slice side of the whole-slice configuration (default 256)")
    sizes.add_argument("--predict-slices", type=int, help="slices of the predicted slab (--quick on a CPU: 16)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from nnunetv2_smaformer.speed.scale import ScaleSettings, run_scale_benchmark
    from nnunetv2_smaformer.speed.scale_report import scale_report

    settings = ScaleSettings.quick(args.device) if args.quick else ScaleSettings(device=args.device)
    overrides = {name: getattr(args, name) for name in SIZE_OPTIONS if getattr(args, name) is not None}
    settings = dataclasses.replace(settings, nnunet_benchmark=args.nnunet_benchmark, **overrides)
    report = run_scale_benchmark(args.output, settings, dataset_id=args.dataset_id)
    print_result([scale_report(report),
                  f"written to {args.output / 'benchmark_scale.json'} and {args.output / 'benchmark_scale.md'}"])
    return 0
