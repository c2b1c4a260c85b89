"""Loading the official Swin-T checkpoint layout into the encoder.

Networks use the checkpoint's window 7 unless a test is about resizing the bias tables for window 8.
"""
from __future__ import annotations

import logging
import pickle
import re

import pytest
import torch

from nnunetv2_smaformer import SMAFormerV2
from nnunetv2_smaformer.errors import PretrainedWeightsError
from nnunetv2_smaformer.pretrained import OFFICIAL_URL, LoadReport

ENCODER_TENSORS = 171  # 190 in the file minus 12 index buffers, 5 masks, 2 classifier tensors


def official_to_timm(key: str) -> str:
    return re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", key)


@pytest.mark.parametrize("window_size", [8, 7])
def test_full_coverage_and_values(official_checkpoint, official_state_dict, window_size, caplog, capsys):
    model = SMAFormerV2(in_channels=1, num_classes=9, window_size=window_size)
    with caplog.at_level(logging.INFO, logger="nnunetv2_smaformer"):
        report = model.load_pretrained(official_checkpoint)

    assert isinstance(report, LoadReport)
    assert report.coverage == 1.0
    assert report.loaded_params == report.encoder_params == model.parameter_counts()["encoder"]
    assert report.loaded_tensors == report.encoder_tensors == ENCODER_TENSORS
    assert report.file_tensors == 190 and len(report.skipped_keys) == 19
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert len(report.resized_keys) == (12 if window_size == 8 else 0)

    encoder_state = model.encoder.swin.state_dict()
    for key, tensor in official_state_dict.items():
        if key.endswith(("relative_position_index", "attn_mask")) or key.startswith("head."):
            continue
        loaded = encoder_state[official_to_timm(key)]
        if key in report.resized_keys:
            assert loaded.shape == (15 * 15, tensor.shape[1])
            # Bicubic resizing keeps the table's scale; the centre (zero offset) stays close.
            assert loaded.abs().max() <= tensor.abs().max() * 1.5
        else:
            assert torch.equal(loaded, tensor), key

    # The report goes to logging, nothing to stdout.
    assert "coverage 100.00 %" in caplog.text
    assert f"{report.encoder_params:,} / {report.encoder_params:,}" in caplog.text
    assert capsys.readouterr().out == ""


def test_patch_merging_is_remapped(official_checkpoint, official_state_dict):
    model = SMAFormerV2(in_channels=1, num_classes=2, window_size=7)
    model.load_pretrained(official_checkpoint)
    merged = model.encoder.swin.layers[1].downsample.reduction.weight
    assert torch.equal(merged, official_state_dict["layers.0.downsample.reduction.weight"])


def test_timm_layout_checkpoint_also_loads(tmp_path):
    source = SMAFormerV2(in_channels=1, num_classes=2, window_size=7)
    path = tmp_path / "timm_layout.pth"
    torch.save(source.encoder.swin.state_dict(), path)
    target = SMAFormerV2(in_channels=1, num_classes=2, window_size=7)
    report = target.load_pretrained(path)
    assert report.coverage == 1.0 and report.resized_keys == []
    for (name, a), b in zip(source.encoder.swin.state_dict().items(), target.encoder.swin.state_dict().values()):
        assert torch.equal(a, b), name


def test_unexpected_tensors_are_reported(tmp_path, official_state_dict, caplog):
    state = dict(official_state_dict)
    state["ema.decay"] = torch.tensor(0.999)
    path = tmp_path / "extra.pth"
    torch.save({"model": state}, path)
    with caplog.at_level(logging.WARNING):
        report = SMAFormerV2(in_channels=1, num_classes=2, window_size=7).load_pretrained(path)
    assert report.unexpected_keys == ["ema.decay"]
    assert report.coverage == 1.0
    assert "ema.decay" in caplog.text and "ema.decay" in str(report)


def test_missing_tensors_fail_unless_allowed(tmp_path, official_state_dict):
    state = {k: v for k, v in official_state_dict.items() if not k.startswith("layers.2.blocks.5.mlp.")}
    path = tmp_path / "partial.pth"
    torch.save({"model": state}, path)
    model = SMAFormerV2(in_channels=1, num_classes=2, window_size=7)
    with pytest.raises(PretrainedWeightsError, match=r"partial\.pth covers only .*layers\.2\.blocks\.5\.mlp"):
        model.load_pretrained(path)
    report = model.load_pretrained(path, min_coverage=0.9)
    assert report.missing_keys == sorted(
        ["layers.2.blocks.5.mlp.fc1.weight", "layers.2.blocks.5.mlp.fc1.bias",
         "layers.2.blocks.5.mlp.fc2.weight", "layers.2.blocks.5.mlp.fc2.bias"]
    )
    assert 0.9 < report.coverage < 1.0


def test_wrong_shapes_raise(tmp_path, official_state_dict):
    state = dict(official_state_dict)
    state["patch_embed.proj.weight"] = torch.zeros(128, 3, 4, 4)  # Swin-B width
    path = tmp_path / "swin_b_like.pth"
    torch.save({"model": state}, path)
    with pytest.raises(PretrainedWeightsError, match=r"swin_b_like\.pth is not a Swin-T .*patch_embed\.proj\.weight"):
        SMAFormerV2(in_channels=1, num_classes=2, window_size=7).load_pretrained(path)


def test_deeper_swin_raises(tmp_path, official_state_dict):
    state = dict(official_state_dict)
    state["layers.2.blocks.6.norm1.weight"] = torch.ones(384)  # Swin-S has 18 blocks in stage 2
    path = tmp_path / "swin_s_like.pth"
    torch.save({"model": state}, path)
    with pytest.raises(PretrainedWeightsError, match="layers.2.blocks.6.norm1.weight"):
        SMAFormerV2(in_channels=1, num_classes=2, window_size=7).load_pretrained(path)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize(
    "writer,match",
    [
        (lambda p: p.write_bytes(b"definitely not a checkpoint"), "corrupt"),
        (lambda p: p.write_bytes(b""), "corrupt"),
        (lambda p: torch.save(torch.zeros(3), p), "does not contain a state dict"),
        (lambda p: torch.save({"model": {"a": 1}}, p), "not a state dict of tensors"),
        (lambda p: p.write_bytes(pickle.dumps({"model": _Payload()})), "refusing to unpickle|corrupt"),
        (lambda p: torch.save({"model": {"x": _Payload()}}, p), "refusing to unpickle"),
    ],
    ids=["garbage", "empty", "tensor", "non-tensor-values", "raw-pickle", "pickled-code"],
)
def test_bad_files_raise_and_name_the_file(tmp_path, writer, match, capsys):
    path = tmp_path / "bad.pth"
    writer(path)
    model = SMAFormerV2(in_channels=1, num_classes=2, window_size=7)
    before = {k: v.clone() for k, v in model.encoder.swin.state_dict().items()}
    with pytest.raises(PretrainedWeightsError, match=match) as info:
        model.load_pretrained(path)
    assert "bad.pth" in str(info.value)
    assert "code ran" not in capsys.readouterr().out
    after = model.encoder.swin.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a failed load must not change weights"


def test_truncated_checkpoint_raises(tmp_path, official_checkpoint):
    path = tmp_path / "truncated.pth"
    path.write_bytes(official_checkpoint.read_bytes()[: 5_000_000])
    with pytest.raises(PretrainedWeightsError, match=r"truncated\.pth is corrupt"):
        SMAFormerV2(in_channels=1, num_classes=2, window_size=7).load_pretrained(path)


def test_missing_file_names_the_download(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="does not exist") as info:
        SMAFormerV2(in_channels=1, num_classes=2, window_size=7).load_pretrained(tmp_path / "nope.pth")
    assert OFFICIAL_URL in str(info.value)
