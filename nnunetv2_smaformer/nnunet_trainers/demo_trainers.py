"""Re-exports the demo's trainers (SMAFormerV2 and stock nnU-Net on the CPU demo budget) for nnU-Net's lookup."""
from nnunetv2_smaformer.demo.trainers import *  # noqa: F401,F403
