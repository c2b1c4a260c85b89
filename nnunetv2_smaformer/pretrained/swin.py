"""Loading the official ImageNet Swin-T checkpoint into the encoder.

The official file (``swin_tiny_patch4_window7_224.pth``, Swin release v1.0.0) is
``{"model": state_dict}`` with 190 tensors. Two layout differences from timm >= 0.9 must be
mapped, or 9 tensors (1,553,664 parameters, the patch-merging layers) are silently skipped:

* patch merging sits at the *end* of stages 0-2 there (``layers.{0,1,2}.downsample``) and at
  the *start* of stages 1-3 in timm (``layers.{1,2,3}.downsample``);
* the file also holds non-persistent buffers (``relative_position_index``, ``attn_mask``) and
  the ImageNet classifier (``head.*``), which the encoder does not use.

Relative-position-bias tables are resized (bicubic, as Swin does when fine-tuning at another
window) when the encoder's window differs from the checkpoint's 7x7.
"""
from __future__ import annotations

import logging
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Dict, List, Mapping, Tuple, Union

import torch
from timm.layers import resize_rel_pos_bias_table_simple
from torch import nn

from nnunetv2_smaformer.errors import PretrainedWeightsError

logger = logging.getLogger(__name__)

OFFICIAL_FILENAME = "swin_tiny_patch4_window7_224.pth"
OFFICIAL_URL = (
    "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth"
)

_BUFFER_SUFFIXES = ("relative_position_index", "attn_mask")
_CLASSIFIER_PREFIX = "head."
_OFFICIAL_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.")
_ENCODER_PREFIXES = ("patch_embed.", "layers.", "norm.")
_BIAS_TABLE_SUFFIX = "relative_position_bias_table"


@dataclass
class LoadReport:
    """What :func:`load_swin_checkpoint` did; ``str(report)`` is a readable summary."""

    path: str
    file_tensors: int
    encoder_tensors: int
    loaded_tensors: int
    encoder_params: int
    loaded_params: int
    resized_keys: List[str] = field(default_factory=list)
    skipped_keys: List[str] = field(default_factory=list)
    missing_keys: List[str] = field(default_factory=list)
    unexpected_keys: List[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Fraction of encoder parameters (elements) taken from the checkpoint."""
        return self.loaded_params / self.encoder_params if self.encoder_params else 0.0

    def __str__(self) -> str:
        def listing(keys: List[str], shown: int = 3) -> str:
            if not keys:
                return "none"
            return f"{len(keys)} ({', '.join(keys[:shown])}{', ...' if len(keys) > shown else ''})"

        return "\n".join(
            [
                f"Swin-T pretrained weights from {self.path}",
                f"  tensors loaded:    {self.loaded_tensors} / {self.encoder_tensors} encoder tensors "
                f"({self.file_tensors} in the file; {len(self.skipped_keys)} buffers/classifier tensors skipped)",
                f"  parameters loaded: {self.loaded_params:,} / {self.encoder_params:,} "
                f"(coverage {100 * self.coverage:.2f} %)",
                f"  resized:           {listing(self.resized_keys)}",
                f"  missing:           {listing(self.missing_keys)}",
                f"  unexpected:        {listing(self.unexpected_keys)}",
            ]
        )


def read_checkpoint(path: Union[str, PathLike]) -> Dict[str, torch.Tensor]:
    """Read a checkpoint safely (``weights_only``) and return its flat ``name -> tensor`` state dict.

    Accepts the official ``{"model": ...}`` wrapper, a ``{"state_dict": ...}`` wrapper, or a bare
    state dict. Raises :class:`PretrainedWeightsError` naming the file for anything else.
    """
    file = Path(path)
    if not file.is_file():
        raise PretrainedWeightsError(
            f"pretrained checkpoint {file} does not exist. Download the official Swin-T ImageNet "
            f"weights from {OFFICIAL_URL} and pass the file's path."
        )
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise PretrainedWeightsError(
                f"{file} holds objects that only code execution could restore; refusing to unpickle it "
                f"(weights_only=True). A Swin-T checkpoint holds tensors only."
            ) from err
        raise PretrainedWeightsError(
            f"{file} is corrupt or not a PyTorch checkpoint (the safe loader rejected its content)"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise PretrainedWeightsError(f"{file} is corrupt, truncated or not a PyTorch checkpoint: {err}") from err

    for wrapper in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise PretrainedWeightsError(f"{file} does not contain a state dict (got {type(obj).__name__})")
    non_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise PretrainedWeightsError(
            f"{file} is not a state dict of tensors: entries {non_tensors[:5]} are not tensors"
        )
    return dict(obj)


def _to_timm_name(name: str) -> str:
    """Official Swin key -> timm key (patch merging moves one stage later)."""
    return _OFFICIAL_DOWNSAMPLE.sub(lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", name)


def _uses_official_layout(state: Mapping[str, torch.Tensor]) -> bool:
    # Official files have patch merging in stage 0; timm-layout files never do.
    return any(k.startswith("layers.0.downsample.") for k in state)


def load_swin_checkpoint(
    swin: nn.Module, path: Union[str, PathLike], min_coverage: float = 1.0
) -> LoadReport:
    """Load an ImageNet Swin-T checkpoint (official or timm layout) into a timm ``SwinTransformer``.

    Args:
        swin: The encoder's timm Swin-T (without classifier).
        path: Checkpoint file.
        min_coverage: Fail unless at least this fraction of the encoder's parameters is loaded.

    Returns:
        The :class:`LoadReport`, also logged at INFO level.

    Raises:
        PretrainedWeightsError: unreadable file, a tensor whose shape cannot fit, tensors of a
            different architecture, or coverage below ``min_coverage``.
    """
    state = read_checkpoint(path)
    official = _uses_official_layout(state)
    target = swin.state_dict()
    to_load: Dict[str, torch.Tensor] = {}
    report = LoadReport(
        path=str(path),
        file_tensors=len(state),
        encoder_tensors=len(target),
        loaded_tensors=0,
        encoder_params=sum(t.numel() for t in target.values()),
        loaded_params=0,
    )
    mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = []

    for key, tensor in state.items():
        if key.endswith(_BUFFER_SUFFIXES) or key.startswith(_CLASSIFIER_PREFIX):
            report.skipped_keys.append(key)
            continue
        name = _to_timm_name(key) if official else key
        if name not in target:
            report.unexpected_keys.append(key)
            continue
        expected = target[name]
        if name.endswith(_BIAS_TABLE_SUFFIX) and tensor.shape != expected.shape:
            attn = swin.get_submodule(name[: -len(_BIAS_TABLE_SUFFIX) - 1])
            if tensor.ndim == 2 and tensor.shape[1] == expected.shape[1]:
                tensor = resize_rel_pos_bias_table_simple(
                    tensor.float(), new_window_size=attn.window_size, new_bias_shape=tuple(expected.shape)
                )
                report.resized_keys.append(key)
        if tensor.shape != expected.shape:
            mismatched.append((key, tuple(tensor.shape), tuple(expected.shape)))
            continue
        to_load[name] = tensor.to(expected.dtype)

    if mismatched:
        shown = "; ".join(f"{k}: file {s} vs encoder {e}" for k, s, e in mismatched[:5])
        raise PretrainedWeightsError(
            f"{path} is not a Swin-T (patch 4, embed 96, depths 2-2-6-2) checkpoint: "
            f"{len(mismatched)} tensor shapes differ ({shown})"
        )
    foreign = [k for k in report.unexpected_keys if k.startswith(_ENCODER_PREFIXES)]
    if foreign:
        raise PretrainedWeightsError(
            f"{path} is not a Swin-T checkpoint: it has {len(foreign)} encoder tensors Swin-T lacks "
            f"(e.g. {', '.join(foreign[:3])}); a deeper or wider Swin variant?"
        )

    report.missing_keys = sorted(set(target) - set(to_load))
    report.loaded_tensors = len(to_load)
    report.loaded_params = sum(t.numel() for t in to_load.values())
    if report.coverage < min_coverage:
        raise PretrainedWeightsError(
            f"{path} covers only {100 * report.coverage:.2f} % of the Swin-T encoder's parameters "
            f"(required {100 * min_coverage:.2f} %); missing: {', '.join(report.missing_keys[:8])}"
            f"{', ...' if len(report.missing_keys) > 8 else ''}"
        )
    swin.load_state_dict(to_load, strict=False)
    logger.info("%s", report)
    if report.unexpected_keys:
        logger.warning("ignored %d unexpected tensors in %s: %s", len(report.unexpected_keys), path,
                       ", ".join(report.unexpected_keys[:8]))
    return report
