"""Test-only trainers, found through a second nnUNet_extTrainer entry (as a user's own would be)."""
import torch

from nnunetv2_smaformer.training.variants import nnUNetTrainerSMAFormerV2_smoke


class nnUNetTrainerSMAFormerV2_resumeTest(nnUNetTrainerSMAFormerV2_smoke):
    """3 short epochs with a checkpoint after each, ImageNet initialisation on."""

    use_pretrained = True
    epochs = 3
    iterations_per_epoch = 3
    val_iterations_per_epoch = 1

    # nnU-Net records the __init__ arguments by name for its checkpoints: keep the signature explicit.
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.save_every = 1


class nnUNetTrainerSMAFormerV2_smokeImageNet(nnUNetTrainerSMAFormerV2_smoke):
    """The smoke budget with ImageNet initialisation on (from $SMAFORMER_SWIN_WEIGHTS or timm's cached weights)."""

    use_pretrained = True
