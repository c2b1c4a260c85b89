"""``smaformer summary``: parameters per part, forward cost, and the pretrained load report."""
from __future__ import annotations

import argparse
import logging

from nnunetv2_smaformer.cli.arguments import multiple_of_stride, positive_int
from nnunetv2_smaformer.cli.output import print_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="parameters per part, GMACs, and the pretrained-weights load report",
        description="Build SMAFormerV2 and report parameters per part and the forward cost in GMACs "
        "(counted by torch.utils.flop_counter.FlopCounterMode: convolutions, matmuls and attention; "
        "one MAC = two FLOPs).",
    )
    parser.add_argument("--in-channels", type=positive_int, default=1, help="input channels (default: 1, CT)")
    parser.add_argument("--num-classes", type=positive_int, default=9,
                        help="classes incl. background (default: 9, Synapse)")
    parser.add_argument("--img-size", type=multiple_of_stride, default=256,
                        help="square input side, a multiple of 32 (default: 256)")
    parser.add_argument("--window-size", type=positive_int, default=8, help="Swin window (default: 8)")
    parser.add_argument("--no-edge", action="store_true", help="plain 1x1 head instead of the Sobel edge head")
    parser.add_argument("--pretrained", metavar="FILE", help="also load this Swin-T checkpoint and show the report")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_smaformer.forward_cost import count_gmacs
    from nnunetv2_smaformer.network.smaformer import SMAFormerV2

    model = SMAFormerV2(
        args.in_channels,
        args.num_classes,
        window_size=args.window_size,
        use_edge_enhancement=not args.no_edge,
        img_size=args.img_size,
    ).eval()
    counts = model.parameter_counts()
    gmacs = count_gmacs(model, (1, args.in_channels, args.img_size, args.img_size))

    width = max(len(k) for k in counts)
    lines = [f"SMAFormerV2(in_channels={args.in_channels}, num_classes={args.num_classes}, "
             f"window_size={args.window_size}, edge={not args.no_edge})", "parameters:"]
    lines += [f"  {name:<{width}}  {n:>12,}" for name, n in counts.items()]
    lines.append(f"forward cost at 1x{args.in_channels}x{args.img_size}x{args.img_size}: {gmacs:.2f} GMACs "
                 f"(torch.utils.flop_counter.FlopCounterMode)")
    if args.pretrained:
        # The loader logs its report; here it is part of the printed summary instead.
        loader_logger = logging.getLogger("nnunetv2_smaformer.pretrained.swin")
        previous = loader_logger.level
        loader_logger.setLevel(logging.WARNING)
        try:
            lines.append(str(model.load_pretrained(args.pretrained)))
        finally:
            loader_logger.setLevel(previous)
    print_result(lines)
    return 0
