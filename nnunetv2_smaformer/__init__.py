"""SMAFormerV2 for nnU-Net v2.

``from nnunetv2_smaformer import SMAFormerV2`` gives the network. The import is lazy so that
light entry points (the CLI's ``--help``, ``trainer-path``) do not pay for importing torch.
"""
from typing import Any

__version__ = "0.1.0"
__all__ = ["SMAFormerV2", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "SMAFormerV2":
        from nnunetv2_smaformer.network.smaformer import SMAFormerV2

        return SMAFormerV2
    raise AttributeError(f"module 'nnunetv2_smaformer' has no attribute {name!r}")
