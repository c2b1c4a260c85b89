"""``smaformer overlay``: PNGs of image, ground truth and prediction for chosen slices."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger("smaformer.overlay")


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
        "--auto", type=int, metavar="N", default=None,
        help="pick the N slices with the most foreground (default: 3)",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder for the PNGs")
    parser.add_argument(
        "--dataset-json", type=Path, default=None,
        help="nnU-Net dataset.json for the legend's organ names (default: Synapse benchmark names)",
    )
    parser.add_argument(
        "--window", type=float, nargs=2, default=(-125.0, 275.0), metavar=("LOW", "HIGH"),
        help="image display window (default: -125 275 HU; use 0 1 for [0, 1]-scaled images)",
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
    logger.info("wrote %d PNG(s) to %s", len(paths), args.output)
    return 0
