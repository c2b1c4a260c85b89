"""``smaformer summary``: parameters per part, forward cost, the ablation variants, and the pretrained load report."""
from __future__ import annotations

import argparse
import logging

from nnunetv2_smaformer.cli.arguments import multiple_of_stride, positive_int
from nnunetv2_smaformer.cli.output import print_result

COUNTER = "torch.utils.flop_counter.FlopCounterMode"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="parameters per part, GMACs, the ablation variants, and the pretrained-weights load report",
        description="Build SMAFormerV2 and report parameters per part and the forward cost in GMACs "
        f"(counted by {COUNTER}: convolutions, matmuls and attention; one MAC = two FLOPs). "
        "With --variants, a Markdown table of every ablation trainer's network instead.",
    )
    parser.add_argument("--in-channels", type=positive_int, default=1, help="input channels (default: 1, CT)")
    parser.add_argument("--num-classes", type=positive_int, default=9,
                        help="classes incl. background (default: 9, Synapse)")
    parser.add_argument("--img-size", type=multiple_of_stride, default=256,
                        help="square input side, a multiple of 32 (default: 256)")
    parser.add_argument("--window-size", type=positive_int, default=8, help="Swin window (default: 8)")
    parser.add_argument("--no-edge", action="store_true", help="plain 1x1 head instead of the Sobel edge head")
    parser.add_argument("--no-encoder-sma", action="store_true", help="identities instead of the encoder's SMA")
    parser.add_argument("--no-decoder-sma", action="store_true",
                        help="identities instead of the decoder's SMA transformer blocks")
    parser.add_argument("--variants", action="store_true",
                        help="a Markdown table of the ablation trainers (-tr names): parameters and GMACs of the "
                        "network each builds, at the given channels, classes, size and window")
    parser.add_argument("--pretrained", metavar="FILE", help="also load this Swin-T checkpoint and show the report")
    parser.set_defaults(func=run)


def _network_kwargs(args: argparse.Namespace) -> dict:
    return {"window_size": args.window_size, "use_edge_enhancement": not args.no_edge,
            "encoder_sma": not args.no_encoder_sma, "decoder_sma": not args.no_decoder_sma, "img_size": args.img_size}


def variants_table(in_channels: int, num_classes: int, img_size: int, window_size: int) -> list[str]:
    """The ablation table's Markdown lines: per trainer of :data:`~nnunetv2_smaformer.training.variants.
    ABLATION_VARIANTS`, what it changes, and the parameters and GMACs of the network it builds."""
    from nnunetv2_smaformer.forward_cost import count_gmacs
    from nnunetv2_smaformer.markdown import table
    from nnunetv2_smaformer.network.smaformer import SMAFormerV2
    from nnunetv2_smaformer.training.variants import ABLATION_VARIANTS

    rows = []
    full = None
    for trainer, change in ABLATION_VARIANTS.items():
        kwargs = {"window_size": window_size, "img_size": img_size, **trainer.network_kwargs}
        model = SMAFormerV2(in_channels, num_classes, **kwargs).eval()
        params = sum(p.numel() for p in model.parameters())
        gmacs = count_gmacs(model, (1, in_channels, img_size, img_size))
        full = full or (params, gmacs)
        rows.append([f"`{trainer.__name__}`", change, f"{params:,}", f"{100 * (params / full[0] - 1):+.1f} %",
                     f"{gmacs:.2f}", f"{100 * (gmacs / full[1] - 1):+.1f} %"])
    return [f"Networks of the ablation trainers at 1x{in_channels}x{img_size}x{img_size}, {num_classes} classes, "
            f"window {window_size}; GMACs counted by {COUNTER}.", "",
            *table(["trainer", "change", "parameters", "vs full", "GMACs", "vs full"], rows,
                   [":---", ":---", "---:", "---:", "---:", "---:"])]


def run(args: argparse.Namespace) -> int:
    if args.variants:
        print_result(variants_table(args.in_channels, args.num_classes, args.img_size, args.window_size))
        return 0
    from nnunetv2_smaformer.forward_cost import count_gmacs
    from nnunetv2_smaformer.network.smaformer import SMAFormerV2

    kwargs = _network_kwargs(args)
    model = SMAFormerV2(args.in_channels, args.num_classes, **kwargs).eval()
    counts = model.parameter_counts()
    gmacs = count_gmacs(model, (1, args.in_channels, args.img_size, args.img_size))

    width = max(len(k) for k in counts)
    removed = [name for name, flag in (("encoder SMA", args.no_encoder_sma), ("decoder SMA", args.no_decoder_sma))
               if flag]
    lines = [f"SMAFormerV2(in_channels={args.in_channels}, num_classes={args.num_classes}, "
             f"window_size={args.window_size}, edge={not args.no_edge})"
             + (f" without {' and '.join(removed)}" if removed else ""), "parameters:"]
    lines += [f"  {name:<{width}}  {n:>12,}" for name, n in counts.items()]
    lines.append(f"forward cost at 1x{args.in_channels}x{args.img_size}x{args.img_size}: {gmacs:.2f} GMACs "
                 f"({COUNTER})")
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
