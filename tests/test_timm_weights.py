"""ImageNet weights through timm's pretrained machinery and the Hugging Face cache; never the network."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from timm.layers import resize_rel_pos_bias_table

from nnunetv2_smaformer import SMAFormerV2
from nnunetv2_smaformer.errors import PretrainedWeightsError
from nnunetv2_smaformer.pretrained import OFFICIAL_URL, PRETRAINED_ENV, TIMM_PRETRAINED

ENCODER_TENSORS = 171  # timm's file: 173 tensors, the 2 of the ImageNet classifier skipped


def assert_loaded(model: SMAFormerV2, report, state) -> None:
    assert report.coverage == 1.0 and report.missing_keys == [] and report.unexpected_keys == []
    assert report.loaded_tensors == report.encoder_tensors == ENCODER_TENSORS
    assert report.loaded_params == report.encoder_params == model.parameter_counts()["encoder"]
    for key, tensor in model.encoder.swin.state_dict().items():
        if key in report.resized_keys:
            attn = model.encoder.swin.get_submodule(key.rsplit(".", 1)[0])
            expected = resize_rel_pos_bias_table(state[key], attn.window_size, tuple(tensor.shape))
            assert torch.equal(tensor, expected), key
        else:
            assert torch.equal(tensor, state[key]), key


@pytest.mark.parametrize("window_size", [7, 8])
def test_timm_pretrained_from_the_cache_offline(hf_home, offline_hub, window_size):
    home, state = hf_home
    offline_hub(home)
    model = SMAFormerV2(in_channels=1, num_classes=9, window_size=window_size)
    report = model.load_pretrained()
    assert_loaded(model, report, state)
    assert report.file_tensors == 173 and sorted(report.skipped_keys) == ["head.fc.bias", "head.fc.weight"]
    assert len(report.resized_keys) == (12 if window_size == 8 else 0)
    assert TIMM_PRETRAINED in report.path and "coverage 100.00 %" in str(report)


def test_empty_cache_offline_is_a_clear_error(tmp_path, offline_hub):
    offline_hub(tmp_path)
    model = SMAFormerV2(in_channels=1, num_classes=2, window_size=7)
    before = {k: v.clone() for k, v in model.encoder.swin.state_dict().items()}
    with pytest.raises(PretrainedWeightsError) as info:
        model.load_pretrained()
    message = str(info.value)
    for part in (TIMM_PRETRAINED, "HF_HUB_OFFLINE=1", str(tmp_path / "hub"), PRETRAINED_ENV, OFFICIAL_URL):
        assert part in message
    assert all(torch.equal(before[k], v) for k, v in model.encoder.swin.state_dict().items())


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_file_in_timm_layout(hf_home, tmp_path, suffix):
    _, state = hf_home
    path = tmp_path / f"swin_tiny_timm{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    model = SMAFormerV2(in_channels=1, num_classes=2, window_size=7)
    assert_loaded(model, model.load_pretrained(path), state)


def test_corrupt_safetensors_names_the_file(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(PretrainedWeightsError, match=r"broken\.safetensors is corrupt"):
        SMAFormerV2(in_channels=1, num_classes=2, window_size=7).load_pretrained(path)
