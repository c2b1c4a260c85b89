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
