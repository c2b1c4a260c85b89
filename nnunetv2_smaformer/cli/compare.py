"""``smaformer compare``: SMAFormerV2 and stock nnU-Net side by side (Markdown, JSON, DSC chart)."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunetv2_smaformer.cli.arguments import (
    add_output,
    add_progress,
    device,
    multiple_of_stride,
    non_negative_int,
    positive_int,
)
from nnunetv2_smaformer.cli.output import print_result


def _fold(text: str):
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a fold number or 'all'") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="side-by-side report of trained models (DSC/HD95, params, GMACs, epoch and inference time)",
        description="Compare trained nnU-Net models on one dataset, e.g. SMAFormerV2 and stock nnU-Net: "
        "evaluates each prediction folder with the Synapse protocol, describes each trained network "
        "(parameters, GMACs, epoch time, inference time per case) and measures SMAFormerV2 against the "
        "2D network stock nnU-Net plans for the dataset at a 256x256 patch in the same run. Writes "
        "report.md, report.json, dsc_per_organ.png and <method>/synapse_eval.{json,csv,md} into OUT_DIR.",
    )
    parser.add_argument("--method", nargs="+", action="append", required=True, dest="methods",
                        metavar="MODEL_FOLDER [PRED_FOLDER]",
                        help="an nnU-Net model folder ($nnUNet_results/DatasetXXX_Name/<Trainer>__<Plans>__<config>) "
                        "and the folder of its predictions, or with --folds the model folder alone; give it at "
                        "least twice")
    parser.add_argument("--gt", required=True, type=Path, metavar="LABELS_DIR",
                        help="ground-truth label maps, matched to predictions by file name")
    add_output(parser, "report folder", metavar="OUT_DIR")
    parser.add_argument("--fold", type=_fold, default=0, help="fold whose checkpoint describes each model: "
                        "a number or 'all' (default: 0)")
    parser.add_argument("--folds", type=non_negative_int, nargs="+", metavar="K",
                        help="cross-validation: pool each method's fold_K/validation predictions of these folds "
                        "(e.g. --folds 0 1 2 3 4) instead of prediction folders; --gt is then the training labels "
                        "(labelsTr) and the first fold's checkpoint describes each model")
    parser.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file name in fold_N")
    parser.add_argument("--dataset-json", type=Path, metavar="FILE",
                        help="labels, organ names, file ending (default: the first model folder's dataset.json)")
    parser.add_argument("--hd95-unit", choices=("voxel", "mm"), default="voxel",
                        help="HD95 in voxels (published tables, default) or mm")
    parser.add_argument("--images", type=Path, metavar="IMAGES_DIR",
                        help="raw images (CASE_0000.nii.gz ...) to time nnU-Net inference on; without it "
                        "PRED_FOLDER/timing.json ({\"seconds_per_case\": x}) is used if present")
    parser.add_argument("--time-cases", type=positive_int, default=2, metavar="N",
                        help="how many of the images to time (default: 2)")
    parser.add_argument("--network-benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure SMAFormerV2 against the stock 2D network at the same patch (default: on)")
    parser.add_argument("--steps", type=positive_int, default=5, help="timed repetitions of the network benchmark")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed repetitions first")
    parser.add_argument("--batch-size", type=positive_int, default=2, help="network benchmark batch size (default: 2)")
    parser.add_argument("--img-size", type=multiple_of_stride, default=256,
                        help="network benchmark patch side, a multiple of 32 (default: 256)")
    parser.add_argument("--device", type=device, default="cpu",
                        help="cpu or cuda[:N], for inference timing and the network benchmark")
    parser.add_argument("-j", "--jobs", type=positive_int, help="evaluation processes (default: one per CPU)")
    add_progress(parser, default=False)
    parser.set_defaults(func=run)


def _methods(values: list[list[str]]) -> list[tuple[str, str | None]]:
    """``(model folder, prediction folder or None)`` per --method (which of the two forms fits is checked with
    --folds by :meth:`CompareConfig.check`)."""
    from nnunetv2_smaformer.errors import SMAFormerError

    for given in values:
        if len(given) > 2:
            raise SMAFormerError(f"--method takes MODEL_FOLDER [PRED_FOLDER], got {' '.join(given)}")
    return [(given[0], given[1] if len(given) == 2 else None) for given in values]


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.comparison.compare import CompareConfig, compare
    from nnunetv2_smaformer.comparison.report import REPORT_JSON, REPORT_MD

    report = compare(CompareConfig(
        methods=_methods(args.methods), gt_dir=args.gt, out_dir=args.output, fold=args.fold, folds=args.folds,
        checkpoint_name=args.checkpoint, dataset_json=args.dataset_json, hd95_unit=args.hd95_unit,
        images_dir=args.images, time_cases=args.time_cases, network_benchmark=args.network_benchmark,
        steps=args.steps, warmup=args.warmup, batch_size=args.batch_size, img_size=args.img_size,
        device=args.device, jobs=args.jobs, progress=args.progress,
    ))
    lines = [f"{report['dataset']}: {len(report['methods'])} methods"
             + (f", folds {' '.join(map(str, args.folds))} pooled" if args.folds else "")]
    for key, evaluation in report["methods"].items():
        model = report["models"][key]
        seconds = model["inference"]["seconds_per_case"]
        mean = evaluation["mean"]
        lines.append(f"  {key:<36} DSC {100 * mean['dice']:6.2f} %   HD95 {mean['hd95']:7.2f}"
                     f"   {model['parameters'] / 1e6:7.2f} M params   {model['gmacs']:7.2f} GMACs"
                     + (f"   {seconds:.2f} s/case" if seconds is not None else ""))
    for row in report["paired"]:
        if row["label"] == "mean":
            lines.append(f"  {row['method']} - {row['reference']}: mean DSC {100 * row['mean_difference']:+.2f} pp, "
                         f"95 % CI [{100 * row['ci95'][0]:+.2f}, {100 * row['ci95'][1]:+.2f}], Wilcoxon p "
                         f"{row['wilcoxon_p']:.3g} (n = {row['n']})")
    lines.append(f"written to {args.output / REPORT_MD} and {args.output / REPORT_JSON}")
    print_result(lines)
    return 0
