"""``smaformer benchmark-scale``: its code paths on a tiny phantom (the Synapse-size run is a benchmark)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnunetv2_smaformer.benchmark.scale import (
    SMAFORMER_TRAINER,
    STOCK_TRAINER,
    ScaleSettings,
    prediction_variants,
    tiles_per_slice,
)
from nnunetv2_smaformer.cli.main import main


def test_tiles_per_slice_at_synapse_geometry():
    # nnU-Net's sliding window on a 512x512 slice: 3 x 3 tiles of 256 at step 0.5, 2 x 2 at step 1, one of 512.
    assert tiles_per_slice([512, 512], [256, 256], 0.5) == 9
    assert tiles_per_slice([512, 512], [256, 256], 1.0) == 4
    assert tiles_per_slice([512, 512], [512, 512], 0.5) == 1
    assert tiles_per_slice([64, 64], [256, 256], 0.5) == 1  # padded to the patch


def test_settings_presets():
    quick, full = ScaleSettings.quick("cpu"), ScaleSettings()
    for settings in (quick, full):
        assert settings.synapse_geometry and settings.size == 512 and settings.slices >= 80
    assert quick.train_cases < full.train_cases and quick.train_steps < full.train_steps
    assert full.train_batch_size is None and full.predict_slices is None  # GPU: planned batch, whole volumes
    assert ScaleSettings.quick("cuda").train_batch_size is None
    assert "patch_512_disable_tta" in [v.name for v in prediction_variants(512)["smaformer"]]


@pytest.mark.parametrize("args, message", [
    (["--slices", "1"], "slices"),
    (["--train-cases", "0"], "training"),
    (["--nnunet-benchmark"], "CUDA"),
    (["--device", "tpu"], "--device"),
])
def test_bad_arguments_exit_2(tmp_path, caplog, args, message):
    assert main(["benchmark-scale", "-o", str(tmp_path / "out"), *args]) == 2
    assert message in caplog.text
    assert not (tmp_path / "out" / "benchmark_scale.json").exists()


@pytest.mark.slow
def test_benchmark_scale_tiny(tmp_path):
    """The whole run on 64x64x8 cases: both methods, every prediction variant, slab extrapolation."""
    out = tmp_path / "scale"
    cmd = [str(Path(sys.executable).parent / "smaformer"), "benchmark-scale", "-o", str(out), "--quick",
           "--size", "64", "--slices", "8", "--train-cases", "2", "--test-cases", "1", "--loader-batches", "1",
           "--train-warmup", "0", "--train-steps", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "benchmark_scale.json").read_text())
    geometry = report["geometry"]
    assert geometry["slice_size"] == [64, 64] and geometry["spacing_mm_xyz"] == [0.76, 0.76, 3.0]
    assert geometry["synapse_scale"] is False and geometry["predicted_slices_per_volume"] == 4
    assert set(report["methods"]) == {SMAFORMER_TRAINER, STOCK_TRAINER}
    ours, stock = report["methods"][SMAFORMER_TRAINER], report["methods"][STOCK_TRAINER]
    assert ours["network"] == "SMAFormerV2" and ours["patch_size"] == [256, 256]
    assert stock["network"] != "SMAFormerV2"
    for method in (ours, stock):
        assert method["train_batch_size"] == min(2, method["batch_size"])
        assert method["loader_samples_per_s_per_worker"] > 0 and method["train_iterations_per_s"] > 0
        assert method["train_megapixels_per_s"] == pytest.approx(
            method["train_samples_per_s"] * method["patch_size"][0] * method["patch_size"][1] / 1e6)
        assert method["predict_seconds_per_volume"] > 0 and method["predict_seconds_per_volume_no_mirroring"] > 0
        assert method["predict_startup_s"] > 0 and method["train_peak_memory_mib"] > 0
        for entry in method["predict"].values():
            assert entry["seconds_per_volume"] >= entry["seconds_per_slab"] > 0
            assert "extrapolated" in entry["seconds_per_volume_source"]
    assert set(ours["predict"]) == {"default", "disable_tta", "step_1.0_disable_tta", "patch_64_disable_tta"}
    assert ours["predict"]["default"]["forward_passes_per_slice"] == 4  # one tile, mirrored 4 ways in 2D
    assert set(stock["predict"]) == {"default", "disable_tta"}
    # Every variant wrote a prediction of the slab.
    for trainer, method in report["methods"].items():
        for variant in method["predict"]:
            assert list((out / "predictions" / trainer / variant).glob("*.nii.gz")), (trainer, variant)
    markdown = (out / "benchmark_scale.md").read_text()
    assert "SMALLER than Synapse" in markdown and SMAFORMER_TRAINER in markdown and "patch_64_disable_tta" in markdown
