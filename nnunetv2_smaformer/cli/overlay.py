"""``smaformer overlay``: PNGs of image, ground truth and prediction for chosen slices."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunetv2_smaformer.cli.arguments import add_output, positive_int
from nnunetv2_smaformer.cli.output import print_result
from nnunetv2_smaformer.synapse import HU_WINDOW


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "overlay",
        help="qualitative PNGs: image, ground truth and prediction side by side",
        description=(
            "Write one PNG per axial slice with three panels: the image in a CT window, the "
            "ground truth and the prediction over it, one fixed colour per label."
        ),
    )
    parser.add_argument("--image", required=True, type=Path, help="image volume (e.g. imagesTs/case_0000.nii.gz)")
    parser.add_argument("--gt", required=True, type=Path, help="ground-truth label map")
    parser.add_argument("--pred", required=True, type=Path, help="predicted label map")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--slices", type=int, nargs="+", metavar="Z", help="axial slice indices (array z axis)")
    choice.add_argument(
        "--auto", type=positive_int, metavar="N", default=None,
        help="pick the N slices with the most foreground (default: 3)",
    )
    add_output(parser, "output folder for the PNGs")
    parser.add_argument(
        "--dataset-json", type=Path, default=None,
        help="nnU-Net dataset.json for the legend's organ names (default: Synapse benchmark names)",
    )
    parser.add_argument(
        "--window", type=float, nargs=2, default=HU_WINDOW, metavar=("LOW", "HIGH"),
        help=f"image display window (default: {HU_WINDOW[0]:g} {HU_WINDOW[1]:g} HU; use 0 1 for [0, 1]-scaled images)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="label opacity (default: 0.5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.evaluation.evaluate import SYNAPSE_BENCHMARK_ORGANS, read_dataset_json
    from nnunetv2_smaformer.evaluation.overlays import write_overlays

    names = (
        read_dataset_json(args.dataset_json).label_names
        if args.dataset_json is not None
        else dict(SYNAPSE_BENCHMARK_ORGANS)
    )
    paths = write_overlays(
        args.image,
        args.gt,
        args.pred,
        args.output,
        slices=args.slices,
        auto=args.auto,
        label_names=names,
        window=tuple(args.window),
        alpha=args.alpha,
    )
    print_result([f"wrote {len(paths)} PNG(s) to {args.output}"])
    return 0
