"""Mixed precision and non-finite losses: the precision a trainer picks (the CUDA queries patched), the network's
own choice of autocast dtype under nnU-Net's predictor, bf16 through nnU-Net's ``train_step`` on the CPU, and the
guard: a NaN batch is skipped and changes nothing, a run of them stops ``nnUNetv2_train`` with a clear error, and no
checkpoint is written with non-finite weights. (A single NaN batch in a whole ``nnUNetv2_train`` run under bf16 is
part of the probe training of tests/test_trainer_cli.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ext_trainers.nnUNetTrainerSMAFormerV2_testing import (
    nnUNetTrainerSMAFormerV2_bf16Test,
    nnUNetTrainerSMAFormerV2_nanRun,
)
from nnunet_cli import model_folder, run, trainer_in_process
from nnunetv2_smaformer.errors import NonFiniteTrainingError
from nnunetv2_smaformer.nnunet_env import nnunet_variables, temporary_environ
from nnunetv2_smaformer.precision import resolve_precision
from nnunetv2_smaformer.training import (
    nnUNetTrainerSMAFormerV2,
    nnUNetTrainerSMAFormerV2_fp16,
    nnUNetTrainerSMAFormerV2_fp32,
)

DATASET = "Dataset501_TinyCT"


@pytest.mark.parametrize("bf16, requested, expected", [
    (True, "auto", ("bf16", torch.bfloat16, False)),
    (False, "auto", ("fp16", torch.float16, True)),
    (True, "fp16", ("fp16", torch.float16, True)),
    (True, "fp32", ("fp32", None, False)),
    (False, "bf16", ("bf16", torch.bfloat16, False)),
])
def test_precision_on_cuda(monkeypatch, bf16, requested, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    precision = resolve_precision(requested, torch.device("cuda"))
    assert (precision.name, precision.autocast_dtype, precision.grad_scaler) == expected
    assert precision.reason


def test_precision_on_the_cpu_is_nnunets_fp32_unless_asked():
    assert resolve_precision("auto", torch.device("cpu")).autocast_dtype is None
    assert resolve_precision("bf16", torch.device("cpu")).autocast_dtype is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", torch.device("cpu"))


def _output_dtype(network, autocast_dtype):
    network.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=autocast_dtype):
        return network(torch.randn(1, 1, 64, 64)).dtype


@pytest.mark.parametrize("trainer, under_fp16, under_bf16", [
    (nnUNetTrainerSMAFormerV2, torch.bfloat16, torch.bfloat16),  # trained in bf16 or fp16: never fp16 afterwards
    (nnUNetTrainerSMAFormerV2_fp16, torch.float16, torch.bfloat16),  # nnU-Net's own: whatever is active
    (nnUNetTrainerSMAFormerV2_fp32, torch.float32, torch.float32),  # always fp32
])
def test_the_network_chooses_its_autocast_dtype(trainer, under_fp16, under_bf16):
    network = trainer.build_network_architecture(None, None, 1, 3, enable_deep_supervision=False)
    assert _output_dtype(network, torch.float16) == under_fp16
    assert _output_dtype(network, torch.bfloat16) == under_bf16


def test_nnunet_predictor_under_fp16_autocast_runs_the_network_in_bf16(ct, smoke_model):
    """The stock predictor, as it runs on CUDA (fp16 autocast around the sliding window), here on the CPU."""
    import SimpleITK as sitk
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    with temporary_environ(nnunet_variables(ct, trainers=False)):
        predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, perform_everything_on_device=False,
                                    device=torch.device("cpu"), verbose=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(smoke_model), use_folds=(0,))
    seen = []
    predictor.network.decoder.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    image = sitk.ReadImage(str(Path(ct["nnUNet_raw"]) / DATASET / "imagesTr" / "case_000_0000.nii.gz"))
    array = sitk.GetArrayFromImage(image)[None].astype(np.float32)
    properties = {"spacing": list(image.GetSpacing())[::-1]}
    with torch.autocast("cpu", dtype=torch.float16):
        segmentation = predictor.predict_single_npy_array(array, properties, None, None, False)
    assert seen and set(seen) == {torch.bfloat16}
    assert segmentation.shape == array.shape[1:]


def _trainer(ct, trainer_class, monkeypatch):
    """An initialised trainer of Dataset501 in this process, at the start of an epoch."""
    torch.manual_seed(0)
    trainer = trainer_in_process(ct, monkeypatch, DATASET, trainer_class.__name__)
    trainer.initialize()
    trainer.on_train_epoch_start()
    return trainer


def _state(trainer):
    optimiser = {k: [v.clone() if torch.is_tensor(v) else v for v in state.values()]
                 for k, state in enumerate(trainer.optimizer.state.values())}
    return {k: v.clone() for k, v in trainer.network.state_dict().items()}, optimiser


def test_a_nan_step_changes_no_weight_no_optimiser_state_no_statistic(ct, monkeypatch):
    trainer = _trainer(ct, nnUNetTrainerSMAFormerV2_nanRun, monkeypatch)  # batches 1, 2 finite, then NaN
    loader, _ = trainer.get_dataloaders()
    batch = next(loader)
    assert np.isfinite(trainer.train_step(batch)["loss"]) and np.isfinite(trainer.train_step(batch)["loss"])
    weights, optimiser = _state(trainer)
    assert optimiser, "the finite steps created AdamW's state"
    output = trainer.train_step(batch)  # the third: NaN
    assert np.isnan(output["loss"])
    after_weights, after_optimiser = _state(trainer)
    assert after_weights.keys() == weights.keys()
    assert all(torch.equal(after_weights[k], weights[k]) for k in weights), "weights or BatchNorm statistics changed"
    assert all(torch.equal(a, b) for k in optimiser for a, b in zip(after_optimiser[k], optimiser[k])
               if torch.is_tensor(a))
    assert trainer.nonfinite_guard.epoch_skipped == 1 and trainer.nonfinite_guard.consecutive == 1
    assert any("running_mean" in k for k in weights)  # the network has BatchNorm statistics to protect


def test_bf16_through_nnunets_train_step_is_finite_and_close_to_fp32(ct, monkeypatch):
    bf16 = _trainer(ct, nnUNetTrainerSMAFormerV2_bf16Test, monkeypatch)
    fp32 = _trainer(ct, nnUNetTrainerSMAFormerV2_nanRun, monkeypatch)  # fp32; step 3 would be NaN
    assert bf16.train_precision.autocast_dtype is torch.bfloat16 and fp32.train_precision.autocast_dtype is None
    fp32.network.load_state_dict(bf16.network.state_dict())
    loader, _ = bf16.get_dataloaders()
    batch = next(loader)
    losses = {}
    for trainer in (bf16, fp32):
        torch.manual_seed(1)  # the same stochastic-depth masks for both
        losses[trainer.train_precision.name] = float(trainer.train_step(batch)["loss"])
    assert all(np.isfinite(v) for v in losses.values())
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * abs(losses["fp32"])
    # The (clipped) gradients the optimiser stepped with point the same way: bf16 keeps 8 mantissa bits, and at batch
    # 2 through dozens of BatchNorms the difference is large (cosine about 0.9), unrelated gradients would be at 0.
    grads = [torch.cat([p.grad.flatten() for p in t.network.parameters() if p.grad is not None]) for t in (bf16, fp32)]
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.8


def test_a_checkpoint_with_non_finite_weights_is_not_written(ct, monkeypatch, tmp_path):
    trainer = _trainer(ct, nnUNetTrainerSMAFormerV2_nanRun, monkeypatch)
    with torch.no_grad():
        trainer.network.input_proj.conv.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteTrainingError, match="input_proj.conv.weight"):
        trainer.save_checkpoint(str(tmp_path / "checkpoint.pth"))
    assert not (tmp_path / "checkpoint.pth").exists()


def _checkpoint_is_finite(path: Path) -> bool:
    weights = torch.load(path, map_location="cpu", weights_only=False)["network_weights"]
    return all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_nnunet_train_stops_after_a_run_of_nan_batches(ct):
    trainer = nnUNetTrainerSMAFormerV2_nanRun.__name__
    result = run(["nnUNetv2_train", "501", "2d", "0", "-tr", trainer, "-device", "cpu"], ct, check=False)
    assert result.returncode != 0
    message = result.stderr
    assert "NonFiniteTrainingError" in message and "training stopped at epoch 1, step 1 of the epoch" in message
    assert "4 consecutive training steps" in message and "under fp32 precision" in message
    assert "-tr nnUNetTrainerSMAFormerV2_fp32" in message and "lower learning rate" in message
    fold = model_folder(ct, DATASET, trainer) / "fold_0"
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "ERROR: training stopped at epoch 1" in log
    assert "Non-finite training steps skipped: 3 of 5 (fp32)" in log
    assert not (fold / "checkpoint_final.pth").exists()
    for checkpoint in fold.glob("*.pth"):  # epoch 0's best checkpoint
        assert _checkpoint_is_finite(checkpoint), checkpoint
