"""How every subcommand reports: its result (what it measured or wrote, and where) goes to stdout in one block;
what happens on the way is logged to stderr under the ``nnunetv2_smaformer`` logger."""
from __future__ import annotations

from collections.abc import Iterable


def print_result(lines: Iterable[str]) -> None:
    """The subcommand's result, on stdout."""
    print("\n".join(lines))
