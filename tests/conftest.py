"""Shared fixtures: official-layout Swin-T checkpoints built from a random timm model."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from swin_checkpoints import official_swin_t_state_dict, write_hf_cache

FIGURES = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[FIGURES] = []


@pytest.fixture(scope="session")
def record_figure(pytestconfig):
    """``record_figure(line)``: a measured figure (accuracy, time) printed at the end of the run even when
    the test passes, so that a suite's log keeps what its full-size runs measured."""
    return pytestconfig.stash[FIGURES].append


def pytest_terminal_summary(terminalreporter, config):
    if config.stash[FIGURES]:
        terminalreporter.section("figures measured by this run")
        for line in config.stash[FIGURES]:
            terminalreporter.write_line(line)


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


@pytest.fixture(scope="session")
def smoke_prediction(ct, smoke_model, tmp_path_factory) -> dict:
    """``nnUNetv2_predict`` of the smoke model for Dataset501's case_001, with class probabilities: the source
    image and the output folder, shared by the tests that only read them."""
    from nnunet_cli import SMOKE, predict

    root = tmp_path_factory.mktemp("smoke_prediction")
    source = Path(ct["nnUNet_raw"]) / "Dataset501_TinyCT" / "imagesTr" / "case_001_0000.nii.gz"
    (root / "in").mkdir()
    (root / "in" / source.name).symlink_to(source)
    predict(ct, root / "in", root / "out", 501, SMOKE, "--save_probabilities")
    return {"source": source, "inputs": root / "in", "out": root / "out", "case": "case_001"}


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory):
    """A Hugging Face home whose hub cache holds timm's ``swin_tiny_patch4_window7_224.ms_in1k`` in the hub's
    layout, from a randomly initialised timm Swin-T (seed 0). Returns ``(HF_HOME, state dict written)``."""
    import timm
    import torch

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in timm.create_model("swin_tiny_patch4_window7_224").state_dict().items()}
    return write_hf_cache(tmp_path_factory.mktemp("hf_home"), state), state


@pytest.fixture
def offline_hub(monkeypatch):
    """``offline_hub(home)``: point the Hugging Face hub at ``home`` and switch downloads off, for this process."""
    from huggingface_hub import constants as hf_constants

    def use(home) -> None:
        monkeypatch.setenv("HF_HOME", str(home))
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        # huggingface_hub reads both variables once, when it is imported.
        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(Path(home) / "hub"))
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)

    return use


@pytest.fixture(scope="session")
def finetuned(tmp_path_factory, hf_home):
    """Pre-training on Dataset511_Four (4 foreground labels), then fine-tuning on Dataset512_Nine (9 labels)
    with nnU-Net's -pretrained_weights (and --npz), both with the ImageNet smoke trainer. Both datasets are
    MRI-like: two input channels (T1, T2), 6 x 64 x 96 voxels of 1 x 1 x 4 mm.

    The pre-training takes ImageNet weights from the test Hugging Face cache; the fine-tuning sees an empty
    cache (offline), so any ImageNet initialisation there would stop it. Returns the environment, the
    source checkpoint and the fine-tuning's stdout.
    """
    from nnunet_cli import model_folder, nnunet_env, run
    from synthetic import write_dataset

    trainer = "nnUNetTrainerSMAFormerV2_smokeImageNet"
    env = nnunet_env(tmp_path_factory.mktemp("nnunet_finetune"))
    mri = {"channel_names": ("T1", "T2"), "shape": (6, 64, 96), "spacing_xyz": (1.0, 1.0, 4.0)}
    write_dataset(Path(env["nnUNet_raw"]), 511, "Four", num_cases=5, num_labels=4, seed=2, **mri)
    write_dataset(Path(env["nnUNet_raw"]), 512, "Nine", num_cases=5, num_labels=9, seed=3, **mri)
    run(["nnUNetv2_plan_and_preprocess", "-d", "511", "512", "-c", "2d", "-np", "1", "--verify_dataset_integrity"],
        env)
    run(["nnUNetv2_train", "511", "2d", "0", "-tr", trainer, "-device", "cpu"], {**env, "HF_HOME": str(hf_home[0])})
    source = model_folder(env, "Dataset511_Four", trainer) / "fold_0" / "checkpoint_final.pth"
    env["HF_HOME"] = str(tmp_path_factory.mktemp("hf_home_empty"))
    result = run(["nnUNetv2_train", "512", "2d", "0", "-tr", trainer, "-device", "cpu", "--npz",
                  "-pretrained_weights", source], env)
    return {"env": env, "source": source, "finetune_stdout": result.stdout}
