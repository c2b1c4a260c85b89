"""Re-exports every SMAFormerV2 trainer for nnU-Net's lookup by name."""
from nnunetv2_smaformer.training import *  # noqa: F401,F403
