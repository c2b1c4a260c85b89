"""``smaformer demo``: the whole job on a synthetic phantom, CPU only, no data or network needed."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

logger = logging.getLogger("smaformer.demo")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="phantom -> conversion -> nnU-Net training of SMAFormerV2 and stock nnU-Net -> evaluation report",
        description="Write a 30-case Synapse-like phantom, convert it, plan and preprocess it with nnU-Net, train "
        "SMAFormerV2 and stock nnU-Net on the same CPU budget, predict the 12 test cases, evaluate them with the "
        "Synapse protocol and write report.md, report.json and figures. nnU-Net folders go inside --out unless "
        "nnUNet_raw/nnUNet_preprocessed/nnUNet_results are set; a free dataset id (900-999) is used.",
    )
    parser.add_argument("--out", type=Path, default=Path("smaformer_demo"), help="output folder (default: smaformer_demo)")
    parser.add_argument("--size", type=int, default=128, help="phantom in-plane size in voxels (default: 128)")
    parser.add_argument("--slices", type=int, default=12, help="phantom slices per case (default: 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset-id", type=int, help="nnU-Net dataset id to use (must be free)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.demo.run import DemoConfig, run_demo

    started = time.perf_counter()
    result = run_demo(DemoConfig(out=args.out, size=args.size, slices=args.slices, seed=args.seed,
                                 dataset_id=args.dataset_id))
    lines = [f"demo finished in {(time.perf_counter() - started) / 60:.1f} min ({result.dataset_name})"]
    for name, evaluation in result.report["methods"].items():
        lines.append(f"  {name:<36} mean DSC {100 * evaluation['mean']['dice']:.2f} %  "
                     f"HD95 {evaluation['mean']['hd95']:.2f}")
    lines += [f"  report: {result.out / 'report.md'}", f"          {result.out / 'report.json'}"]
    print("\n".join(lines))
    from nnunetv2_smaformer.demo.trainers import DEMO_MIN_MEAN_DSC  # nnU-Net's trainers: imported once needed

    for name, evaluation in result.report["methods"].items():
        if evaluation["mean"]["dice"] < DEMO_MIN_MEAN_DSC:
            logger.warning("%s reached a mean DSC of %.3f, below the demo's %.2f: the budget is too short "
                           "for this machine or phantom", name, evaluation["mean"]["dice"], DEMO_MIN_MEAN_DSC)
    return 0
