"""``smaformer evaluate``: Synapse DSC / HD95 of a prediction folder against ground truth."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunetv2_smaformer.cli.arguments import add_output, add_progress, positive_int
from nnunetv2_smaformer.cli.output import print_result
from nnunetv2_smaformer.synapse import HD95_UNITS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="per-organ DSC and HD95 of predicted segmentations (Synapse protocol)",
        description=(
            "Evaluate every label map in --pred against the same-named file in --gt with the "
            "Synapse/TransUNet rule: both masks non-empty -> (Dice, HD95); prediction non-empty "
            "but ground truth empty -> (1, 0); prediction empty -> (0, 0). Per-organ means over "
            "cases, then the mean over organs. Writes OUT.json, OUT.csv and OUT.md."
        ),
    )
    parser.add_argument("--pred", required=True, type=Path, help="folder of predicted label maps")
    parser.add_argument("--gt", required=True, type=Path, help="folder of ground-truth label maps (same file names)")
    add_output(parser, "JSON output (default: PRED/synapse_eval.json); .csv and .md are written next to it",
               required=False)
    parser.add_argument(
        "--hd95-unit", choices=HD95_UNITS, default="voxel",
        help="HD95 in voxels (as the published tables) or in mm from the files' spacing (default: voxel)",
    )
    parser.add_argument(
        "--labels", type=positive_int, nargs="+", default=None, metavar="L",
        help="labels to evaluate (default: all positive labels of the dataset.json, else 1..8)",
    )
    parser.add_argument(
        "--dataset-json", type=Path, default=None,
        help="nnU-Net dataset.json for labels, organ names and file ending "
        "(default: PRED/dataset.json if present, else the 8 Synapse benchmark organs)",
    )
    parser.add_argument("-j", "--jobs", type=positive_int, default=None,
                        help="worker processes (default: min(CPUs, cases))")
    add_progress(parser, default=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that building the CLI parser stays cheap.
    from nnunetv2_smaformer.evaluation.evaluate import DEFAULT_OUTPUT_NAME, evaluate_folders, write_outputs

    result = evaluate_folders(args.pred, args.gt, labels=args.labels, dataset_json=args.dataset_json,
                              hd95_unit=args.hd95_unit, jobs=args.jobs, progress=args.progress)
    output = args.output if args.output is not None else args.pred / DEFAULT_OUTPUT_NAME
    paths = write_outputs(result, output)
    print_result([f"{len(result.per_case)} case(s); HD95 in {result.hd95_unit}", result.to_markdown().rstrip(),
                  f"written to {', '.join(str(path) for path in paths)}"])
    return 0
