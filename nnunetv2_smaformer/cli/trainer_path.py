"""``smaformer trainer-path``: the folder to put in ``nnUNet_extTrainer``."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional


def trainer_dir() -> Path:
    # Resolved from the package location without importing torch or nnU-Net.
    return Path(__file__).resolve().parent.parent / "nnunet_trainers"


def with_trainer_dir(ext_trainer: Optional[str]) -> str:
    """A ``nnUNet_extTrainer`` value that lists :func:`trainer_dir`, after the folders already in ``ext_trainer``."""
    folders = [p for p in (ext_trainer or "").split(os.pathsep) if p.strip()]
    if str(trainer_dir()) not in folders:
        folders.append(str(trainer_dir()))
    return os.pathsep.join(folders)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trainer-path",
        help="print the folder for nnUNet_extTrainer",
        description="Print the folder of SMAFormerV2's nnU-Net trainers. Use it once per shell: "
        "export nnUNet_extTrainer=$(smaformer trainer-path)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(trainer_dir())
    return 0
