"""``smaformer convert-acdc``: ACDC in the SSL4MIS h5 layout -> nnU-Net raw dataset."""
from __future__ import annotations

import argparse

from nnunetv2_smaformer.acdc import DATASET_NAME, DEFAULT_SPACING_ZYX, NUM_FOLDS
from nnunetv2_smaformer.cli.arguments import add_conversion_options
from nnunetv2_smaformer.cli.output import print_result

_SPACING = " ".join(f"{s:g}" for s in DEFAULT_SPACING_ZYX)
_DESCRIPTION = f"""\
Convert ACDC (cardiac cine-MRI; labels 1 RV, 2 myocardium, 3 LV) in the SSL4MIS h5 layout into
$nnUNet_raw/DatasetID_{DATASET_NAME}. SRC holds train.list, val.list and test.list, the 3-D volumes in data/
(patientNNN_frame0K.h5) and the training patients' 2-D slices in data/slices/ or slices/
(patientNNN_frame0K_slice_S.h5, restacked S = 1..N). Train and val patients go to imagesTr/labelsTr with
{NUM_FOLDS} folds grouped by patient in splits_final.json, test patients to imagesTs/labelsTs. The h5 files store
no spacing: every volume gets --spacing (default {_SPACING} mm, z y x), written into dataset.json.
nnUNet_raw and nnUNet_preprocessed must be set; nothing is written unless every volume converts.
For the official ACDC release (NIfTI with Info.cfg), use nnU-Net's own Dataset027_ACDC conversion.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-acdc",
        help="convert ACDC (SSL4MIS h5 layout) into an nnU-Net raw dataset with patient-grouped folds",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", metavar="SRC", help="folder holding the SSL4MIS lists and data/")
    add_conversion_options(parser, "NAME")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("Z", "Y", "X"), default=None,
                        help=f"voxel spacing in mm for every volume (default: {_SPACING})")
    parser.add_argument("--name", default=DATASET_NAME, help=f"dataset name: DatasetID_NAME (default: {DATASET_NAME})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.conversion.acdc_ssl4mis import convert_acdc

    summary = convert_acdc(args.src, args.dataset_id, spacing_zyx=args.spacing, name=args.name,
                           overwrite=args.overwrite, num_processes=args.num_processes, progress=args.progress)
    spacing = " x ".join(f"{s:g}" for s in summary.spacing_zyx)
    print_result([f"{summary.dataset_dir}: {summary.training_volumes} training volume(s) of "
                  f"{summary.training_patients} patients in {NUM_FOLDS} patient-grouped folds ({summary.splits_file}), "
                  f"{summary.test_volumes} test volume(s) of {summary.test_patients} patients; spacing assumed "
                  f"{spacing} mm (z, y, x)"])
    return 0
