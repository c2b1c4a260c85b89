"""ImageNet Swin-T weights for the encoder: timm's pretrained ``swin_tiny_patch4_window7_224.ms_in1k``
through the Hugging Face cache, or a local file.

Sources:

* **timm** (the default when no file is named): timm's pretrained configuration for
  ``swin_tiny_patch4_window7_224.ms_in1k`` points at the Hugging Face hub repository
  ``timm/swin_tiny_patch4_window7_224.ms_in1k``; timm's loader downloads it once into the Hugging
  Face cache (``$HF_HOME/hub``) and reads the cached copy afterwards, also offline
  (``HF_HUB_OFFLINE=1``). These are the official ImageNet-1k Swin-T weights in timm's layout.
* **a local file**: the official release file (``swin_tiny_patch4_window7_224.pth``,
  ``{"model": state_dict}``) or a timm-layout file (``.safetensors`` or ``.pth``).
  ``.pth`` files are read with ``torch.load(weights_only=True)``: anything that would need code to be
  unpickled is refused.

timm's own ``swin_transformer.checkpoint_filter_fn`` turns either layout into the encoder's: it moves
the official file's patch merging from the end of stages 0-2 to the start of stages 1-3 (tensors that
name-and-shape matching would miss), drops the non-persistent buffers
(``relative_position_index``, ``attn_mask``) and resizes the relative-position-bias tables when the
encoder's window differs from the checkpoint's 7x7. The ImageNet classifier (``head.*``) is skipped.
Everything else must fit the encoder exactly, or the load is refused before any weight changes.
"""
from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors
from timm.models import get_pretrained_cfg, load_state_dict_from_hf
from timm.models.swin_transformer import checkpoint_filter_fn
from torch import nn

from nnunetv2_smaformer.errors import PretrainedWeightsError
from nnunetv2_smaformer.paths import PathLike

logger = logging.getLogger(__name__)

#: Environment variable naming a local Swin-T file; when unset, timm's pretrained weights are used.
PRETRAINED_ENV = "SMAFORMER_SWIN_WEIGHTS"
OFFICIAL_FILENAME = "swin_tiny_patch4_window7_224.pth"
OFFICIAL_URL = (
    "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth"
)
#: timm's name (architecture.tag) of the official ImageNet-1k Swin-T weights.
TIMM_PRETRAINED = "swin_tiny_patch4_window7_224.ms_in1k"

_CLASSIFIER_PREFIXES = ("head.",)
_ENCODER_PREFIXES = ("patch_embed.", "layers.", "norm.")
_BIAS_TABLE_SUFFIX = "relative_position_bias_table"
_PATCH_EMBED = "patch_embed.proj.weight"


@dataclass(frozen=True)
class SwinWeights:
    """A Swin-T state dict read into memory (``name -> tensor``) and where it came from."""

    state: dict[str, torch.Tensor]
    source: str


@dataclass
class LoadReport:
    """What :func:`load_swin_weights` did; ``str(report)`` is a readable summary."""

    path: str
    file_tensors: int
    encoder_tensors: int
    loaded_tensors: int
    encoder_params: int
    loaded_params: int
    resized_keys: list[str] = field(default_factory=list)
    skipped_keys: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Fraction of encoder parameters (elements) taken from the checkpoint."""
        return self.loaded_params / self.encoder_params if self.encoder_params else 0.0

    def __str__(self) -> str:
        def listing(keys: list[str], shown: int = 3) -> str:
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


def _two_ways() -> str:
    return (
        f"Either let timm download {TIMM_PRETRAINED} once into the Hugging Face cache (online, without "
        f"HF_HUB_OFFLINE=1), or download {OFFICIAL_FILENAME} from {OFFICIAL_URL} and name the file with "
        f"{PRETRAINED_ENV}=/path/to/{OFFICIAL_FILENAME}"
    )


def read_checkpoint(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely and return its flat ``name -> tensor`` state dict.

    ``.safetensors`` files are read with safetensors; anything else with ``torch.load(weights_only=True)``,
    accepting the official ``{"model": ...}`` wrapper, a ``{"state_dict": ...}`` wrapper or a bare state
    dict. Raises :class:`PretrainedWeightsError` naming the file for anything else.
    """
    file = Path(path)
    if not file.is_file():
        raise PretrainedWeightsError(f"pretrained checkpoint {file} does not exist. {_two_ways()}.")
    if file.suffix == ".safetensors":
        try:
            return dict(load_safetensors(str(file), device="cpu"))
        except (SafetensorError, OSError, ValueError) as err:
            raise PretrainedWeightsError(f"{file} is corrupt or not a safetensors file: {err}") from err
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


def fetch_timm_weights(name: str = TIMM_PRETRAINED) -> SwinWeights:
    """timm's pretrained weights ``name`` through timm's hub loader and the Hugging Face cache.

    Downloads once when online; offline (``HF_HUB_OFFLINE=1``) the cached copy is used. Raises
    :class:`PretrainedWeightsError` naming both ways to get the weights when neither works.
    """
    hub_id = get_pretrained_cfg(name).hf_hub_id
    try:
        state = load_state_dict_from_hf(hub_id, weights_only=True)
    except LocalEntryNotFoundError as err:
        offline = hf_constants.is_offline_mode()
        mode = "downloading is switched off (HF_HUB_OFFLINE=1)" if offline else "the download failed"
        raise PretrainedWeightsError(
            f"timm's ImageNet Swin-T weights ({name}, Hugging Face hub {hub_id}) are not in the Hugging Face "
            f"cache ({hf_constants.HF_HUB_CACHE}) and {mode}. {_two_ways()}."
        ) from err
    except (OSError, pickle.UnpicklingError, RuntimeError, SafetensorError) as err:
        raise PretrainedWeightsError(
            f"timm's ImageNet Swin-T weights ({name}, Hugging Face hub {hub_id}) could not be read: {err}. "
            f"{_two_ways()}."
        ) from err
    return SwinWeights(state=dict(state), source=f"timm {name} (Hugging Face hub {hub_id})")


def swin_weights(path: PathLike | None = None) -> SwinWeights:
    """The weights in ``path``, or timm's pretrained Swin-T when ``path`` is None."""
    if path is None:
        return fetch_timm_weights()
    return SwinWeights(state=read_checkpoint(path), source=str(path))


def _uses_official_layout(state: Mapping[str, torch.Tensor]) -> bool:
    # Official files have patch merging in stage 0; timm-layout files never do.
    return any(k.startswith("layers.0.downsample.") for k in state)


def _to_encoder_layout(state: dict[str, torch.Tensor], swin: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """timm's ``checkpoint_filter_fn``: layout remap, buffers dropped, bias tables resized to the encoder's window."""
    target = swin.state_dict()
    if _PATCH_EMBED in state and _PATCH_EMBED in target and state[_PATCH_EMBED].shape != target[_PATCH_EMBED].shape:
        # timm would resample another patch size's embedding; that is a different network.
        raise PretrainedWeightsError(
            f"{source} is not a Swin-T (patch 4, embed 96, depths 2-2-6-2) checkpoint: {_PATCH_EMBED}: "
            f"file {tuple(state[_PATCH_EMBED].shape)} vs encoder {tuple(target[_PATCH_EMBED].shape)}"
        )
    # timm's filter recognises its own layout by the classifier 'head.fc.weight'; an encoder-only timm file
    # has none and would be shifted like an official one, so it is marked as timm layout for the call.
    marker = "head.fc.weight"
    marked = not _uses_official_layout(state) and marker not in state
    try:
        converted = checkpoint_filter_fn({**state, marker: torch.empty(0)} if marked else state, swin)
    except (AttributeError, RuntimeError, ValueError, AssertionError) as err:
        foreign = [k for k in state if k.endswith(_BIAS_TABLE_SUFFIX)]
        raise PretrainedWeightsError(
            f"{source} is not a Swin-T checkpoint: its relative-position tables "
            f"({len(foreign)}) do not fit the encoder's blocks ({err})"
        ) from err
    if marked:
        converted.pop(marker)
    return converted


def load_swin_weights(swin: nn.Module, weights: SwinWeights, min_coverage: float = 1.0) -> LoadReport:
    """Load Swin-T weights (official or timm layout) into a timm ``SwinTransformer`` without classifier.

    Returns the :class:`LoadReport`, also logged at INFO level. Raises :class:`PretrainedWeightsError`
    (before changing any weight) for a tensor whose shape cannot fit, tensors of a different architecture,
    or coverage below ``min_coverage``.
    """
    source, state = weights.source, weights.state
    target = swin.state_dict()
    converted = _to_encoder_layout(state, swin, source)
    report = LoadReport(
        path=source,
        file_tensors=len(state),
        encoder_tensors=len(target),
        loaded_tensors=0,
        encoder_params=sum(t.numel() for t in target.values()),
        loaded_params=0,
    )
    # Buffers the filter dropped, by their names in the file.
    report.skipped_keys = [k for k in state if k.endswith(("relative_position_index", "attn_mask"))]
    to_load: dict[str, torch.Tensor] = {}
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for name, tensor in converted.items():
        if name.startswith(_CLASSIFIER_PREFIXES):
            report.skipped_keys.append(name)
            continue
        if name not in target:
            report.unexpected_keys.append(name)
            continue
        expected = target[name]
        if tensor.shape != expected.shape:
            mismatched.append((name, tuple(tensor.shape), tuple(expected.shape)))
            continue
        if name.endswith(_BIAS_TABLE_SUFFIX) and name in state and state[name].shape != tensor.shape:
            report.resized_keys.append(name)
        to_load[name] = tensor.to(expected.dtype)

    if mismatched:
        shown = "; ".join(f"{k}: file {s} vs encoder {e}" for k, s, e in mismatched[:5])
        raise PretrainedWeightsError(
            f"{source} is not a Swin-T (patch 4, embed 96, depths 2-2-6-2) checkpoint: "
            f"{len(mismatched)} tensor shapes differ ({shown})"
        )
    foreign = [k for k in report.unexpected_keys if k.startswith(_ENCODER_PREFIXES)]
    if foreign:
        raise PretrainedWeightsError(
            f"{source} is not a Swin-T checkpoint: it has {len(foreign)} encoder tensors Swin-T lacks "
            f"(e.g. {', '.join(foreign[:3])}); a deeper or wider Swin variant?"
        )

    report.missing_keys = sorted(set(target) - set(to_load))
    report.loaded_tensors = len(to_load)
    report.loaded_params = sum(t.numel() for t in to_load.values())
    if report.coverage < min_coverage:
        raise PretrainedWeightsError(
            f"{source} covers only {100 * report.coverage:.2f} % of the Swin-T encoder's parameters "
            f"(required {100 * min_coverage:.2f} %); missing: {', '.join(report.missing_keys[:8])}"
            f"{', ...' if len(report.missing_keys) > 8 else ''}"
        )
    swin.load_state_dict(to_load, strict=False)
    logger.info("%s", report)
    if report.unexpected_keys:
        logger.warning("ignored %d unexpected tensors in %s: %s", len(report.unexpected_keys), source,
                       ", ".join(report.unexpected_keys[:8]))
    return report


def load_swin_checkpoint(
    swin: nn.Module, path: PathLike, min_coverage: float = 1.0
) -> LoadReport:
    """Read ``path`` (see :func:`read_checkpoint`) and load it with :func:`load_swin_weights`."""
    return load_swin_weights(swin, swin_weights(path), min_coverage=min_coverage)
