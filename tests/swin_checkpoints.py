"""Build checkpoints with the exact layout of the official Swin release and a Hugging Face cache in the hub's
layout (tests cannot download either)."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from timm.models.swin_transformer import SwinTransformer, get_relative_position_index

_TIMM_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.")


def official_swin_t_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised Swin-T (224, window 7, 1000 classes) in the official v1.0.0 layout.

    190 tensors: patch merging at the end of stages 0-2, ``head.weight/bias``, and the 12
    ``relative_position_index`` and 5 ``attn_mask`` buffers the official code saved.
    """
    torch.manual_seed(seed)
    model = SwinTransformer(img_size=224, window_size=7, num_classes=1000)
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        name = _TIMM_DOWNSAMPLE.sub(lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", name)
        state[name.replace("head.fc.", "head.")] = tensor.clone()
    for stage_idx, stage in enumerate(model.layers):
        for block_idx, block in enumerate(stage.blocks):
            prefix = f"layers.{stage_idx}.blocks.{block_idx}"
            state[f"{prefix}.attn.relative_position_index"] = get_relative_position_index(7, 7)
            if block.attn_mask is not None:
                state[f"{prefix}.attn_mask"] = block.attn_mask.clone()
    return state


def write_hf_cache(home: Path, state: dict) -> Path:
    """A Hugging Face home whose hub cache holds ``state`` as timm's ``swin_tiny_patch4_window7_224.ms_in1k``, in
    the hub's layout (``hub/models--timm--.../snapshots/<revision>/model.safetensors``, ``refs/main``)."""
    from safetensors.torch import save_file

    repo = home / "hub" / "models--timm--swin_tiny_patch4_window7_224.ms_in1k"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "snapshots" / revision).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / revision / "model.safetensors"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return home
