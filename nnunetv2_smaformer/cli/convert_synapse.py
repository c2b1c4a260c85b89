"""``smaformer convert-synapse``: Synapse (BTCV raw or TransUNet npz/h5) -> nnU-Net raw dataset."""
from __future__ import annotations

import argparse

from nnunetv2_smaformer.cli.arguments import add_conversion_options
from nnunetv2_smaformer.cli.output import print_result
from nnunetv2_smaformer.synapse import DATASET_NAME, SYNAPSE_SPACING

_DESCRIPTION = """\
Convert the Synapse multi-organ CT data into $nnUNet_raw/DatasetID_Synapse (8 benchmark organs,
labels 0-8) and write $nnUNet_preprocessed/DatasetID_Synapse/splits_final.json whose fold 0 is the
TransUNet split (18 training / 12 test cases). The 12 test cases are also linked into
imagesTs/labelsTs. SRC holds either the BTCV raw release (RawData/Training/img, label) or
TransUNet's release (train_npz/, test_vol_h5/, lists). nnUNet_raw and nnUNet_preprocessed must be
set. Nothing is written unless every case converts.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "convert-synapse",
        help="convert Synapse (BTCV raw or TransUNet npz/h5) into an nnU-Net raw dataset",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", metavar="SRC", help="folder holding the BTCV or TransUNet release")
    add_conversion_options(parser, DATASET_NAME)
    parser.add_argument("--format", dest="fmt", choices=("auto", "btcv", "transunet"), default="auto",
                        help="source layout (default: detected)")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"), default=None,
                        help="voxel spacing in mm for TransUNet volumes, which store none "
                             f"(default: {' '.join(str(s) for s in SYNAPSE_SPACING)})")
    parser.add_argument("--lists", default=None, metavar="DIR",
                        help="folder with TransUNet's train.txt/test_vol.txt (default: looked up beside "
                             "the data, in lists_Synapse/ or lists/lists_Synapse/)")
    parser.add_argument("--require-all", action="store_true",
                        help="fail unless all 30 Synapse cases are present (default: warn and split what exists)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.conversion.converter import convert_synapse

    summary = convert_synapse(
        args.src,
        args.dataset_id,
        fmt=args.fmt,
        overwrite=args.overwrite,
        spacing=args.spacing,
        num_processes=args.num_processes,
        require_all=args.require_all,
        lists_dir=args.lists,
        progress=args.progress,
    )
    print_result([f"{summary.dataset_dir}: {len(summary.cases)} case(s) converted from the {summary.source_format} "
                  f"layout, {len(summary.train_cases)} training and {len(summary.test_cases)} test; "
                  f"split in {summary.splits_file}"])
    return 0
