"""Which Synapse release a source folder holds, before anything is converted.

Two layouts are understood, each a :class:`~nnunetv2_smaformer.conversion.cases.SourceFormat`
that owns finding, reading and converting its files:

* ``btcv`` (:mod:`.btcv`): the raw BTCV release, ``RawData/Training/img/imgNNNN.nii.gz`` and
  ``RawData/Training/label/labelNNNN.nii.gz``;
* ``transunet`` (:mod:`.transunet`): TransUNet's preprocessed release, ``train_npz/`` slices,
  ``test_vol_h5/`` volumes and their lists.

Every problem is a :class:`~nnunetv2_smaformer.errors.ConversionError` naming the file or case.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunetv2_smaformer.conversion.btcv import BTCV
from nnunetv2_smaformer.conversion.cases import SourceFormat
from nnunetv2_smaformer.conversion.transunet import TRANSUNET
from nnunetv2_smaformer.errors import ConversionError

#: The source formats by name (``--format``).
SOURCE_FORMATS: dict[str, SourceFormat] = {source.name: source for source in (BTCV, TRANSUNET)}
FORMATS = tuple(SOURCE_FORMATS)

_EXPECTED = (
    "expected the BTCV raw layout (RawData/Training/img/imgNNNN.nii.gz + label/labelNNNN.nii.gz) "
    "or the TransUNet layout (train_npz/caseNNNN_sliceSSS.npz + test_vol_h5/caseNNNN.npy.h5)"
)


@dataclass(frozen=True)
class SourceLayout:
    """A detected source: its format and the folder the layout starts in."""

    source: SourceFormat
    root: Path

    @property
    def fmt(self) -> str:
        return self.source.name


def detect_layout(src: Path, fmt: str = "auto") -> SourceLayout:
    """Find which layout ``src`` holds. ``fmt`` is ``auto``, ``btcv`` or ``transunet``."""
    if not src.exists():
        raise ConversionError(f"source folder {src} does not exist")
    if not src.is_dir():
        raise ConversionError(f"source {src} is not a folder")
    if fmt != "auto" and fmt not in SOURCE_FORMATS:
        raise ConversionError(f"unknown source format {fmt!r}; use auto, btcv or transunet")
    if fmt != "auto":
        root = SOURCE_FORMATS[fmt].find_root(src)
        if root is None:
            raise ConversionError(f"no {SOURCE_FORMATS[fmt].title} layout found in {src}: {_EXPECTED}")
        return SourceLayout(SOURCE_FORMATS[fmt], root)
    found = {name: root for name, source in SOURCE_FORMATS.items() if (root := source.find_root(src)) is not None}
    if len(found) > 1:
        raise ConversionError(
            f"{src} holds both a BTCV layout ({found['btcv']}) and a TransUNet layout ({found['transunet']}); "
            "choose one with --format btcv or --format transunet"
        )
    if not found:
        raise ConversionError(f"no Synapse data found in {src}: {_EXPECTED}")
    (name, root), = found.items()
    return SourceLayout(SOURCE_FORMATS[name], root)
