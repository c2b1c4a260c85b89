"""A stock nnU-Net trainer shortened for tests: the "stock nnU-Net" side of ``smaformer compare``."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_compareTest(nnUNetTrainer):
    """nnU-Net's own network, loss and optimiser; 1 epoch of 5 training and 1 validation iterations, no mirroring."""

    # nnU-Net records the __init__ arguments by name for its checkpoints: keep the signature explicit.
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 5
        self.num_val_iterations_per_epoch = 1

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        # Mirroring off for training and test-time augmentation: 4x cheaper validation and prediction in 2D.
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None
