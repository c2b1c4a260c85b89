"""Entry point of the ``smaformer`` console script.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds a parser whose ``func`` default runs the command and
returns an exit code. Imports of heavy dependencies stay inside the command functions so
``smaformer --help`` and light commands start quickly.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from nnunetv2_smaformer.errors import SMAFormerError

# Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "demo",
    "summary",
    "trainer_path",
    "benchmark_network",
    "benchmark_scale",
    "compare",
    "add_configuration",
    "evaluate",
    "overlay",
    "convert_synapse",
    "convert_acdc",
    "make_phantom",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smaformer",
        description="SMAFormerV2 for nnU-Net v2: network summary, data conversion, evaluation, benchmarks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"nnunetv2_smaformer.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``smaformer`` command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status: 0, or 2 for
    a bad argument (argparse's message) or a problem the user can fix (one logged line)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a bad argument after argparse's message
        return int(exit_.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # timm's import triggers torch's deprecation notice for torch.jit.interface; it is not the user's concern.
    warnings.filterwarnings("ignore", message=".*torch.jit.interface.*", category=FutureWarning)
    try:
        return int(args.func(args) or 0)
    except SMAFormerError as err:
        logging.getLogger(__name__).error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
