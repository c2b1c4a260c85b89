"""Argument types and options shared by the subcommands. Every check of a single argument is an argparse type here,
so that a bad value is refused with argparse's own message (naming the option, exit 2) before anything runs."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from nnunetv2_smaformer.network.stride import NETWORK_STRIDE


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer type that refuses values below ``minimum``."""

    def check(text: str) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum}")
        return value

    check.__name__ = f"integer >= {minimum}"
    return check


positive_int = at_least(1)
non_negative_int = at_least(0)


def multiple_of_stride(text: str) -> int:
    """A positive image side that SMAFormerV2 accepts: a multiple of its total stride."""
    value = _integer(text)
    if value <= 0 or value % NETWORK_STRIDE:
        raise argparse.ArgumentTypeError(
            f"{text} is not a positive multiple of {NETWORK_STRIDE} (SMAFormerV2's total stride)")
    return value


def dataset_id(text: str) -> int:
    """An nnU-Net dataset id: 1 to 999."""
    value = _integer(text)
    if not 1 <= value <= 999:
        raise argparse.ArgumentTypeError(f"{text} is not an nnU-Net dataset id (1 to 999)")
    return value


def device(text: str) -> str:
    """``cpu`` or ``cuda[:N]``; CUDA only where this machine has it (torch is imported for that check only)."""
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise argparse.ArgumentTypeError(f"{text!r} is not cpu or cuda[:N]")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: CUDA is not available on this machine")
    return text


def add_output(parser: argparse.ArgumentParser, help: str, *, required: bool = True,
               default: Path | None = None, metavar: str | None = None) -> None:
    """The one spelling of an output option: ``-o/--output`` (``--out`` is accepted as an older spelling)."""
    parser.add_argument("-o", "--output", "--out", dest="output", type=Path, required=required, default=default,
                        metavar=metavar, help=help)


def add_conversion_options(parser: argparse.ArgumentParser, dataset: str) -> None:
    """What every converter takes: ``-d/--dataset-id``, ``--overwrite``, ``-np/--num-processes`` and the progress
    switch; ``dataset`` is the converted folder's name as the help shows it (``DatasetID_<dataset>``)."""
    parser.add_argument("-d", "--dataset-id", type=dataset_id, required=True, metavar="ID",
                        help=f"nnU-Net dataset id (1-999); the dataset is named DatasetID_{dataset}")
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace an existing DatasetID_{dataset} and its splits_final.json")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=None, metavar="N",
                        help="worker processes (default: number of CPUs, at most 8)")
    add_progress(parser, default=True)


def add_progress(parser: argparse.ArgumentParser, default: bool) -> None:
    """``--progress/--no-progress``: progress bars on stderr."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=default,
                        help=f"progress bars on stderr (default: {'on' if default else 'off'})")
