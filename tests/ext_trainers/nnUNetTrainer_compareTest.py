"""A stock nnU-Net trainer shortened for tests: the "stock nnU-Net" side of ``smaformer compare``."""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_smaformer.training.trainer import TrainingBudget


class nnUNetTrainer_compareTest(TrainingBudget, nnUNetTrainer):
    """nnU-Net's own network, loss and optimiser; 1 epoch of 5 training and 1 validation iterations, no
    mirroring (4x cheaper validation and prediction in 2D)."""

    epochs = 1
    iterations_per_epoch = 5
    val_iterations_per_epoch = 1
    mirroring = False
