"""``smaformer benchmark-scale``: its code paths on a tiny phantom (the Synapse-size run is a benchmark)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnunetv2_smaformer.cli.main import main
from nnunetv2_smaformer.speed.scale import (
    SMAFORMER_TRAINER,
    STOCK_TRAINER,
    ScaleSettings,
    prediction_variants,
    tiles_per_slice,
)


def test_tiles_per_slice_at_synapse_geometry():
    # nnU-Net's sliding window on a 512x512 slice: 3 x 3 tiles of 256 at step 0.5, 2 x 2 at step 1, one of 512.
    assert tiles_per_slice([512, 512], [256, 256], 0.5) == 9
    assert tiles_per_slice([512, 512], [256, 256], 1.0) == 4
    assert tiles_per_slice([512, 512], [512, 512], 0.5) == 1
    assert tiles_per_slice([64, 64], [256, 256], 0.5) == 1  # padded to the patch


def test_slab_extrapolation_with_the_fixed_cost_of_a_run():
    from nnunetv2_smaformer.speed.scale import extrapolate_to_volume, fixed_cost

    # 12 s for 1 slice, 18 s for 4: 2 s a slice, 10 s fixed; an 80-slice volume 10 + 80 x 2 s.
    assert fixed_cost(12.0, 18.0, 4) == pytest.approx(10.0)
    assert extrapolate_to_volume(18.0, 10.0, 80, 4) == pytest.approx(170.0)
    # A slab measured faster than one slice (noise): no negative per-slice cost, no fixed cost above a run's time.
    assert fixed_cost(10.0, 9.0, 4) == 10.0
    assert extrapolate_to_volume(9.0, 10.0, 80, 4) == 10.0


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
def test_bad_arguments_exit_2(tmp_path, caplog, capsys, args, message):
    assert main(["benchmark-scale", "-o", str(tmp_path / "out"), *args]) == 2
    # A single argument's check is argparse's (its message on stderr), the settings' checks are logged.
    assert message in caplog.text + capsys.readouterr().err
    assert not (tmp_path / "out" / "benchmark_scale.json").exists()


@pytest.mark.slow
def test_benchmark_scale_tiny(tmp_path):
    """The whole run on 64x64x8 cases: both methods, every prediction variant, slab extrapolation."""
    out = tmp_path / "scale"
    cmd = [str(Path(sys.executable).parent / "smaformer"), "benchmark-scale", "-o", str(out), "--quick",
           "--size", "64", "--slices", "8", "--train-cases", "2", "--test-cases", "1", "--loader-batches", "1",
           "--train-warmup", "0", "--train-steps", "1", "--whole-slice-size", "32", "--predict-slices", "4"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "benchmark_scale.json").read_text())
    geometry = report["geometry"]
    assert geometry["slice_size"] == [64, 64] and geometry["spacing_mm_xyz"] == [0.76, 0.76, 3.0]
    assert geometry["synapse_scale"] is False and geometry["predicted_slices_per_volume"] == 4
    ours_key, whole_key, stock_key = (f"{SMAFORMER_TRAINER}__2d", f"{SMAFORMER_TRAINER}__2d_wholeslice",
                                      f"{STOCK_TRAINER}__2d")
    assert set(report["methods"]) == {ours_key, whole_key, stock_key}
    ours, whole, stock = (report["methods"][k] for k in (ours_key, whole_key, stock_key))
    assert ours["network"] == whole["network"] == "SMAFormerV2" and stock["network"] != "SMAFormerV2"
    assert [m["configuration"] for m in (ours, whole, stock)] == ["2d", "2d_wholeslice", "2d"]
    assert ours["patch_size"] == [256, 256] and ours["spacing"] == pytest.approx([0.76, 0.76])
    # The whole-slice configuration: the 64 x 64 slice at half the resolution, one 32 x 32 tile.
    assert whole["patch_size"] == [32, 32] and whole["spacing"] == pytest.approx([1.52, 1.52])
    for method in (ours, whole, stock):
        assert method["train_batch_size"] == min(2, method["batch_size"])
        assert method["loader_samples_per_s_per_worker"] > 0 and method["train_iterations_per_s"] > 0
        median_step = sorted(method["train_step_s"])[len(method["train_step_s"]) // 2]
        height, width = method["patch_size"]
        assert method["train_megapixels_per_s"] == pytest.approx(method["train_batch_size"] * height * width
                                                                 / median_step / 1e6)
        assert method["predict_seconds_per_volume"] > 0 and method["predict_seconds_per_volume_no_mirroring"] > 0
        assert method["predict_fixed_s"] > 0 and method["train_peak_memory_mib"] > 0
        for entry in method["predict"].values():
            assert entry["seconds_per_volume"] >= entry["seconds_per_slab"] > 0
            assert "extrapolated from slabs of 1 and 4 slices" in entry["seconds_per_volume_source"]
            # The fixed cost once, the rest of the 4-slice slab's time scaled to the volume's 8 slices.
            assert entry["seconds_per_volume"] == pytest.approx(
                method["predict_fixed_s"] + max(entry["seconds_per_slab"] - method["predict_fixed_s"], 0) * 8 / 4)
    assert set(ours["predict"]) == {"default", "disable_tta", "step_1.0_disable_tta", "patch_64_disable_tta"}
    assert ours["predict"]["default"]["forward_passes_per_slice"] == 4  # one tile, mirrored 4 ways in 2D
    assert set(whole["predict"]) == set(stock["predict"]) == {"default", "disable_tta"}
    assert whole["predict"]["default"]["tiles_per_slice"] == 1
    # Ratios against stock nnU-Net on 2d, for both SMAFormerV2 rows.
    assert report["reference"] == stock_key and set(report["over_reference"]) == {ours_key, whole_key}
    for key in (ours_key, whole_key):
        assert report["over_reference"][key]["predict_seconds_per_volume"] == pytest.approx(
            report["methods"][key]["predict"]["default"]["seconds_per_volume"]
            / stock["predict"]["default"]["seconds_per_volume"])
    # Every variant wrote a prediction of the slab.
    for trainer, method in report["methods"].items():
        for variant in method["predict"]:
            assert list((out / "predictions" / trainer / variant).glob("*.nii.gz")), (trainer, variant)
    markdown = (out / "benchmark_scale.md").read_text()
    assert "SMALLER than Synapse" in markdown and whole_key in markdown and "patch_64_disable_tta" in markdown
    assert "SMAFormerV2 on `2d_wholeslice` predicts a volume in" in markdown and "(goal: at most 0.5x)" in markdown
