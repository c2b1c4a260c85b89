"""``smaformer demo``: the whole job on a synthetic phantom, CPU only, no data or network needed."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from nnunetv2_smaformer.cli.arguments import add_output, at_least, dataset_id
from nnunetv2_smaformer.cli.output import print_result

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="phantom -> conversion -> nnU-Net training of SMAFormerV2 and stock nnU-Net -> evaluation report",
        description="Write a 30-case Synapse-like phantom, convert it, plan and preprocess it with nnU-Net, train "
        "SMAFormerV2 and stock nnU-Net on the same CPU budget, predict the 12 test cases, evaluate them with the "
        "Synapse protocol and write report.md, report.json and figures. nnU-Net folders go inside the output "
        "folder unless nnUNet_raw/nnUNet_preprocessed/nnUNet_results are set; a free dataset id (900-999) is used.",
    )
    add_output(parser, "output folder (default: smaformer_demo)", required=False, default=Path("smaformer_demo"))
    parser.add_argument("--size", type=at_least(8), default=128, help="phantom in-plane size in voxels (default: 128)")
    parser.add_argument("--slices", type=at_least(2), default=12, help="phantom slices per case (default: 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset-id", type=dataset_id, help="nnU-Net dataset id to use (must be free)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.demo.pass_mark import pass_mark_warnings
    from nnunetv2_smaformer.demo.run import DemoConfig, run_demo

    started = time.perf_counter()
    result = run_demo(DemoConfig(out=args.output, size=args.size, slices=args.slices, seed=args.seed,
                                 dataset_id=args.dataset_id))
    lines = [f"demo finished in {(time.perf_counter() - started) / 60:.1f} min ({result.dataset_name})"]
    for name, evaluation in result.report["methods"].items():
        lines.append(f"  {name:<36} mean DSC {100 * evaluation['mean']['dice']:.2f} %  "
                     f"HD95 {evaluation['mean']['hd95']:.2f}")
    lines += [f"  report: {result.out / 'report.md'}", f"          {result.out / 'report.json'}"]
    print_result(lines)
    for warning in pass_mark_warnings(result.report):
        logger.warning("%s", warning)
    return 0
