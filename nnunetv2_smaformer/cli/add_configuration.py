"""``smaformer add-configuration``: the original's whole-slice protocol as an nnU-Net configuration."""
from __future__ import annotations

import argparse

from nnunetv2_smaformer.cli.arguments import multiple_of_stride, positive_int
from nnunetv2_smaformer.cli.output import print_result
from nnunetv2_smaformer.whole_slice.plans import DEFAULT_NAME, DEFAULT_SIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "add-configuration",
        help="add a whole-slice 2D configuration (the original's protocol) to a dataset's plans and preprocess it",
        description="Add a 2D configuration to a dataset's nnU-Net plans that inherits from '2d', with the in-plane "
        "spacing that makes the dataset's median slice SIZE x SIZE (Synapse at 0.76 mm: 1.52 mm for 256), a "
        "SIZE x SIZE patch, its own data identifier, and the architecture and batch size nnU-Net's own planner "
        "chooses for them (so stock nnUNetTrainer trains on it too); then preprocess it with nnU-Net's "
        "preprocessor. Run after nnUNetv2_plan_and_preprocess or nnUNetv2_plan_experiment. Afterwards: "
        "nnUNetv2_train ID NAME FOLD -tr nnUNetTrainerSMAFormerV2, nnUNetv2_predict ... -c NAME.",
    )
    parser.add_argument("-d", "--dataset", required=True, metavar="ID", help="dataset id or name")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", metavar="PLANS",
                        help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"configuration name (default: {DEFAULT_NAME})")
    parser.add_argument("--size", type=multiple_of_stride, default=DEFAULT_SIZE,
                        help=f"slice side in pixels after resampling, a multiple of 32 (default: {DEFAULT_SIZE})")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=4, metavar="N",
                        help="preprocessing processes (default: 4)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a configuration of that name that has other settings")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.whole_slice.configuration import add_whole_slice_configuration

    added = add_whole_slice_configuration(args.dataset, plans_identifier=args.plans, name=args.name, size=args.size,
                                          num_processes=args.num_processes, overwrite=args.overwrite)
    entry = added.configuration
    spacing = " x ".join(f"{s:.4g}" for s in entry["spacing"])
    print_result([
        f"{added.dataset}: configuration {added.name} {added.action} in {added.plans_file}",
        f"  spacing {spacing} mm, patch {'x'.join(map(str, entry['patch_size']))}, batch {entry['batch_size']}, "
        f"data in {added.data_folder}",
        f"  train: nnUNetv2_train {added.dataset} {added.name} FOLD -tr nnUNetTrainerSMAFormerV2",
    ])
    return 0
