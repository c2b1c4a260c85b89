"""Shared fixtures: official-layout Swin-T checkpoints built from a random timm model."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from swin_checkpoints import official_swin_t_state_dict  # noqa: E402


@pytest.fixture(scope="session")
def official_state_dict():
    """The 190-tensor official Swin-T layout (random weights), shared read-only by tests."""
    return official_swin_t_state_dict(seed=0)


@pytest.fixture(scope="session")
def official_checkpoint(tmp_path_factory, official_state_dict) -> Path:
    import torch

    path = tmp_path_factory.mktemp("swin") / "swin_tiny_patch4_window7_224.pth"
    torch.save({"model": official_state_dict}, path)
    return path


@pytest.fixture(scope="session")
def smaformer_bin() -> str:
    """The installed ``smaformer`` console script of this interpreter's environment."""
    path = Path(sys.executable).parent / "smaformer"
    assert path.exists(), f"console script not installed next to {sys.executable}"
    return str(path)


@pytest.fixture(scope="session")
def ct(tmp_path_factory):
    """nnU-Net folders with Dataset501_TinyCT: 5 CT cases (8 x 64 x 64, 0.8 x 0.8 x 3 mm), 3 labels,
    planned and preprocessed for 2d. Returns the environment for the nnUNetv2_* subprocesses."""
    from nnunet_cli import nnunet_env, plan_and_preprocess
    from synthetic import write_dataset

    env = nnunet_env(tmp_path_factory.mktemp("nnunet_ct"))
    write_dataset(Path(env["nnUNet_raw"]), 501, "TinyCT", num_cases=5, num_labels=3)
    plan_and_preprocess(env, 501)
    return env


@pytest.fixture(scope="session")
def smoke_model(ct) -> Path:
    """SMAFormerV2 trained on Dataset501 fold 0 with the smoke trainer; its model folder."""
    from nnunet_cli import SMOKE, model_folder, run

    run(["nnUNetv2_train", "501", "2d", "0", "-tr", SMOKE, "-device", "cpu"], ct)
    return model_folder(ct, "Dataset501_TinyCT", SMOKE)
