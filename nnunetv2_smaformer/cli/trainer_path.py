"""``smaformer trainer-path``: the folder to put in ``nnUNet_extTrainer``."""
from __future__ import annotations

import argparse

from nnunetv2_smaformer.cli.output import print_result
from nnunetv2_smaformer.nnunet_env import trainer_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trainer-path",
        help="print the folder for nnUNet_extTrainer",
        description="Print the folder of SMAFormerV2's nnU-Net trainers. Use it once per shell: "
        "export nnUNet_extTrainer=$(smaformer trainer-path)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print_result([str(trainer_dir())])
    return 0
