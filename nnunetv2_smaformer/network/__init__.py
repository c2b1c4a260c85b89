"""The SMAFormerV2 network and its building blocks."""
from nnunetv2_smaformer.network.smaformer import SMAFormerV2

__all__ = ["SMAFormerV2"]
