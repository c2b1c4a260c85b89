"""``smaformer make-phantom``: write a synthetic Synapse-like dataset in the BTCV or TransUNet layout."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunetv2_smaformer.cli.arguments import at_least
from nnunetv2_smaformer.cli.output import print_result
from nnunetv2_smaformer.errors import ConversionError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "make-phantom",
        help="write synthetic abdominal CT phantoms in the BTCV or TransUNet layout",
        description="Write synthetic abdominal CT phantoms (13 BTCV organs as ellipsoids with CT-like HU "
                    "and noise) in the BTCV raw layout or TransUNet's npz/h5 layout, e.g. to try "
                    "convert-synapse and training without the real data.",
    )
    parser.add_argument("out", metavar="OUT", help="output folder (created; must not hold that layout yet)")
    parser.add_argument("--layout", choices=("btcv", "transunet"), required=True, help="source layout to write")
    parser.add_argument("--size", type=at_least(8), default=64, metavar="N", help="in-plane size N x N (default 64)")
    parser.add_argument("--slices", type=at_least(2), default=16, metavar="N", help="slices per case (default 16)")
    parser.add_argument("--cases", nargs="+", default=["all"], metavar="CASE",
                        help="case numbers (1, 0021, case0021) or all/train/test (default: all 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--lists", choices=("under", "beside", "none"), default="under",
                        help="TransUNet lists in lists/lists_Synapse (under), beside the data, or none")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.conversion.phantom import make_phantom, parse_case_selection

    out = Path(args.out)
    existing = ["RawData"] if args.layout == "btcv" else ["train_npz", "test_vol_h5"]
    present = [name for name in existing if (out / name).exists()]
    if present:
        raise ConversionError(f"{out} already holds {', '.join(present)}; choose an empty folder")
    try:
        cases = parse_case_selection(args.cases)
    except ValueError as err:
        raise ConversionError(str(err)) from err
    phantoms = make_phantom(out, args.layout, cases=cases, size=args.size, slices=args.slices, seed=args.seed,
                            lists=args.lists)
    print_result([f"{out}: {len(phantoms)} phantom case(s) of {args.slices} x {args.size} x {args.size} voxels "
                  f"(z y x) in the {args.layout} layout"])
    return 0
