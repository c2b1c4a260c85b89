"""Argument types shared by the subcommands: each refuses a bad value with argparse's own message (exit 2)."""
from __future__ import annotations

import argparse

from nnunetv2_smaformer.network.stride import NETWORK_STRIDE


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def multiple_of_stride(text: str) -> int:
    """A positive image side that SMAFormerV2 accepts: a multiple of its total stride."""
    value = int(text)
    if value <= 0 or value % NETWORK_STRIDE:
        raise argparse.ArgumentTypeError(
            f"{text} is not a positive multiple of {NETWORK_STRIDE} (SMAFormerV2's total stride)")
    return value
