"""The SMAFormerV2 network and its building blocks.

``from nnunetv2_smaformer.network import SMAFormerV2`` is lazy, so that :mod:`.stride` imports without torch.
"""
from typing import Any

__all__ = ["SMAFormerV2"]


def __getattr__(name: str) -> Any:
    if name == "SMAFormerV2":
        from nnunetv2_smaformer.network.smaformer import SMAFormerV2

        return SMAFormerV2
    raise AttributeError(f"module 'nnunetv2_smaformer.network' has no attribute {name!r}")
