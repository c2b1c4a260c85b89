"""Pretrained-weight loading (official ImageNet Swin-T checkpoint -> SMAFormerV2 encoder)."""
from nnunetv2_smaformer.pretrained.swin import (
    OFFICIAL_FILENAME,
    OFFICIAL_URL,
    LoadReport,
    load_swin_checkpoint,
    read_checkpoint,
)

__all__ = ["OFFICIAL_FILENAME", "OFFICIAL_URL", "LoadReport", "load_swin_checkpoint", "read_checkpoint"]
