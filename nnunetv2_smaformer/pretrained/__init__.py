"""ImageNet Swin-T weights for the encoder: timm's pretrained weights (Hugging Face cache) or a local file."""
from nnunetv2_smaformer.pretrained.swin import (
    OFFICIAL_FILENAME,
    OFFICIAL_URL,
    PRETRAINED_ENV,
    TIMM_PRETRAINED,
    LoadReport,
    SwinWeights,
    fetch_timm_weights,
    load_swin_checkpoint,
    load_swin_weights,
    read_checkpoint,
    swin_weights,
)

__all__ = [
    "OFFICIAL_FILENAME",
    "OFFICIAL_URL",
    "PRETRAINED_ENV",
    "TIMM_PRETRAINED",
    "LoadReport",
    "SwinWeights",
    "fetch_timm_weights",
    "load_swin_checkpoint",
    "load_swin_weights",
    "read_checkpoint",
    "swin_weights",
]
