"""Shared fixtures: official-layout Swin-T checkpoints built from a random timm model, the tiny CT dataset and the
models trained on it. What several test files read is built once per run, also under pytest-xdist
(``make test``'s worker processes, :mod:`shared`), and the test files that take longest start first."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

# Waiting OpenMP threads sleep instead of spinning (GNU OpenMP spins for a while by default). Each torch process
# here has as many threads as the machine has cores (nnU-Net sets that for CPU training), so two test workers
# oversubscribe the cores, and spinning threads would hold the cores the other worker needs. OpenMP reads this
# when torch loads: set before anything imports torch; the nnU-Net subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from shared import build_once, once
from swin_checkpoints import official_swin_t_state_dict, write_hf_cache

#: Test files in the order they start, before the others (in file name order): the longest first, so that two
#: workers end at about the same time instead of one of them starting the demo near the end, and files that build
#: nothing shared (whole_slice, conversion) between those that need the shared models, so that a worker seldom
#: waits for another's build.
FIRST_FILES = ("test_demo.py", "test_benchmark_scale.py", "test_compile_amp.py", "test_compare.py",
               "test_whole_slice.py", "test_conversion.py", "test_trainer_cli.py", "test_finetune.py",
               "test_ensemble.py", "test_benchmark_network.py")


class Figures:
    """Measured figures (accuracy, time) printed at the end of the run even when the tests pass, so that a suite's
    log keeps what its full-size runs measured. A line travels in the report of the test phase that recorded it,
    which pytest-xdist's workers send to the main process, where the reports are read."""

    def __init__(self) -> None:
        self.pending: list = []
        self.lines: list = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        outcome.get_result().user_properties.extend(("figure", line) for line in self.pending)
        self.pending.clear()

    def pytest_runtest_logreport(self, report):
        self.lines.extend(value for key, value in report.user_properties if key == "figure")

    def pytest_terminal_summary(self, terminalreporter):
        if self.lines:
            terminalreporter.section("figures measured by this run")
            for line in self.lines:
                terminalreporter.write_line(line)


def pytest_configure(config):
    config.pluginmanager.register(Figures(), "smaformer_figures")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        return FIRST_FILES.index(name) if name in FIRST_FILES else len(FIRST_FILES)

    items.sort(key=rank)  # stable: each file's tests keep their order


@pytest.fixture(scope="session")
def record_figure(pytestconfig):
    """``record_figure(line)``: a figure for the end of the run's log (:class:`Figures`)."""
    return pytestconfig.pluginmanager.get_plugin("smaformer_figures").pending.append


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
    planned and preprocessed for 2d, with nnU-Net's 5-fold split written (as its first training would write it,
    but before trainings of several workers start at once). Returns the environment for the nnUNetv2_* subprocesses."""
    from nnunet_cli import nnunet_env, plan_and_preprocess
    from synthetic import write_dataset

    def build(root: Path) -> None:
        from nnunetv2.utilities.crossval_split import generate_crossval_split

        env = nnunet_env(root)
        write_dataset(Path(env["nnUNet_raw"]), 501, "TinyCT", num_cases=5, num_labels=3)
        plan_and_preprocess(env, 501)
        cases = sorted(p.name[: -len("_0000.nii.gz")]
                       for p in (Path(env["nnUNet_raw"]) / "Dataset501_TinyCT" / "imagesTr").iterdir())
        splits = generate_crossval_split(cases, seed=12345, n_splits=5)
        (Path(env["nnUNet_preprocessed"]) / "Dataset501_TinyCT" / "splits_final.json").write_text(json.dumps(splits))

    return nnunet_env(build_once(tmp_path_factory, "nnunet_ct", build))


def _trained(tmp_path_factory, env, dataset_id: int, trainer: str, *extra: str) -> Path:
    """``nnUNetv2_train DATASET 2d 0 -tr TRAINER`` on the CPU, once per run; its model folder."""
    from nnunet_cli import model_folder, run

    once(tmp_path_factory, f"trained_{dataset_id}_{trainer}",
         lambda: run(["nnUNetv2_train", str(dataset_id), "2d", "0", "-tr", trainer, "-device", "cpu", *extra], env))
    dataset = next(Path(env["nnUNet_preprocessed"]).glob(f"Dataset{dataset_id:03d}_*")).name
    return model_folder(env, dataset, trainer)


@pytest.fixture(scope="session")
def smoke_model(tmp_path_factory, ct) -> Path:
    """SMAFormerV2 trained on Dataset501 fold 0 with the smoke trainer, its validation probabilities kept (--npz,
    for ensembling); its model folder. Tests only read it."""
    from nnunet_cli import SMOKE

    return _trained(tmp_path_factory, ct, 501, SMOKE, "--npz")


@pytest.fixture(scope="session")
def stock_model(tmp_path_factory, ct) -> Path:
    """Stock nnU-Net (its smoke-sized test trainer) trained on Dataset501 fold 0 with --npz; its model folder."""
    return _trained(tmp_path_factory, ct, 501, "nnUNetTrainer_compareTest", "--npz")


@pytest.fixture(scope="session")
def predictions(ct, smoke_model, stock_model, tmp_path_factory) -> dict:
    """Dataset501's fold-0 validation cases predicted by both shared models with ``nnUNetv2_predict``
    (``--save_probabilities``; the two runs in parallel), for the tests that only read them: the input folder, each
    trainer's output folder and the cases."""
    from nnunet_cli import SMOKE, predict_in_parallel

    raw = Path(ct["nnUNet_raw"]) / "Dataset501_TinyCT" / "imagesTr"
    splits = json.loads((Path(ct["nnUNet_preprocessed"]) / "Dataset501_TinyCT" / "splits_final.json").read_text())
    cases = sorted(splits[0]["val"])
    trainers = (SMOKE, "nnUNetTrainer_compareTest")

    def build(root: Path) -> None:
        (root / "images").mkdir()
        for case in cases:
            (root / "images" / f"{case}_0000.nii.gz").symlink_to(raw / f"{case}_0000.nii.gz")
        predict_in_parallel(ct, root / "images", {trainer: root / trainer for trainer in trainers}, 501,
                            "--save_probabilities")

    root = build_once(tmp_path_factory, "predictions", build)
    return {"images": root / "images", "cases": cases, **{trainer: root / trainer for trainer in trainers}}


@pytest.fixture(scope="session")
def smoke_prediction(predictions) -> dict:
    """The smoke model's prediction of one case (:func:`predictions`), with class probabilities: the source image,
    the input folder, the output folder and the case."""
    from nnunet_cli import SMOKE

    case = predictions["cases"][0]
    return {"source": predictions["images"] / f"{case}_0000.nii.gz", "inputs": predictions["images"],
            "out": predictions[SMOKE], "case": case}


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
    from nnunet_cli import model_folder, nnunet_env, plan_and_preprocess, run
    from synthetic import write_dataset

    trainer = "nnUNetTrainerSMAFormerV2_smokeImageNet"

    def build(root: Path) -> None:
        env = nnunet_env(root / "nnunet")
        mri = {"channel_names": ("T1", "T2"), "shape": (6, 64, 96), "spacing_xyz": (1.0, 1.0, 4.0)}
        write_dataset(Path(env["nnUNet_raw"]), 511, "Four", num_cases=5, num_labels=4, seed=2, **mri)
        write_dataset(Path(env["nnUNet_raw"]), 512, "Nine", num_cases=5, num_labels=9, seed=3, **mri)
        plan_and_preprocess(env, 511, 512)
        run(["nnUNetv2_train", "511", "2d", "0", "-tr", trainer, "-device", "cpu"],
            {**env, "HF_HOME": str(hf_home[0])})
        source = model_folder(env, "Dataset511_Four", trainer) / "fold_0" / "checkpoint_final.pth"
        (root / "hf_home_empty").mkdir()
        result = run(["nnUNetv2_train", "512", "2d", "0", "-tr", trainer, "-device", "cpu", "--npz",
                      "-pretrained_weights", source], {**env, "HF_HOME": str(root / "hf_home_empty")})
        (root / "finetune_stdout.txt").write_text(result.stdout)

    root = build_once(tmp_path_factory, "finetuned", build)
    env = {**nnunet_env(root / "nnunet"), "HF_HOME": str(root / "hf_home_empty")}
    return {"env": env, "source": model_folder(env, "Dataset511_Four", trainer) / "fold_0" / "checkpoint_final.pth",
            "finetune_stdout": (root / "finetune_stdout.txt").read_text()}
