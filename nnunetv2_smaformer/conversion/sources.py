"""Finding and checking the files of a Synapse source release, before anything is converted.

Two layouts are understood (SPEC section 5):

* ``btcv``: the raw BTCV release, ``RawData/Training/img/imgNNNN.nii.gz`` and
  ``RawData/Training/label/labelNNNN.nii.gz``. SRC may be the folder holding ``RawData``, the
  ``RawData`` folder, or the ``Training`` folder itself.
* ``transunet``: TransUNet's preprocessed release, ``train_npz/caseNNNN_sliceSSS.npz`` and
  ``test_vol_h5/caseNNNN.npy.h5``, with the lists ``train.txt`` / ``test_vol.txt`` either beside
  the data, in ``lists_Synapse/`` or in ``lists/lists_Synapse/`` (or given explicitly).

Scanning only looks at file names (and list files); file contents are checked by the converter.
Every problem is a :class:`~nnunetv2_smaformer.errors.ConversionError` naming the file or case.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from nnunetv2_smaformer.conversion.synapse import ALL_CASES, case_name, split_of
from nnunetv2_smaformer.errors import ConversionError

logger = logging.getLogger(__name__)

FORMATS = ("btcv", "transunet")

_BTCV_IMAGE_RE = re.compile(r"^img(\d+)\.nii(\.gz)?$")
_BTCV_LABEL_RE = re.compile(r"^label(\d+)\.nii(\.gz)?$")
_NPZ_RE = re.compile(r"^case(\d+)_slice(\d+)\.npz$")
_H5_RE = re.compile(r"^case(\d+)(\.npy)?\.h5$")
_LIST_SLICE_RE = re.compile(r"^case(\d+)_slice(\d+)(\.npz)?$")
_LIST_CASE_RE = re.compile(r"^case(\d+)(\.npy\.h5|\.h5)?$")

# Folders (relative to SRC) where each layout may start.
_BTCV_ROOTS = (".", "Training", "RawData/Training", "Abdomen/RawData/Training")
_TRANSUNET_ROOTS = (".", "Synapse", "data/Synapse")
_LIST_DIRS = ("lists/lists_Synapse", "lists_Synapse", ".")


@dataclass(frozen=True)
class BTCVCase:
    """One BTCV case: its image and label NIfTI files."""

    case_id: int
    image: Path
    label: Path


@dataclass(frozen=True)
class TransUNetCase:
    """One TransUNet case: ``npz`` slice files in slice order (slice 0 first), or one ``h5`` volume."""

    case_id: int
    kind: str
    files: Tuple[Path, ...]


@dataclass(frozen=True)
class SourceLayout:
    """A detected source: its format and the folder the layout starts in."""

    fmt: str
    root: Path


def _btcv_root(src: Path) -> Optional[Path]:
    for rel in _BTCV_ROOTS:
        root = (src / rel)
        if (root / "img").is_dir() and (root / "label").is_dir():
            return root
    return None


def _transunet_root(src: Path) -> Optional[Path]:
    for rel in _TRANSUNET_ROOTS:
        root = (src / rel)
        if (root / "train_npz").is_dir() or (root / "test_vol_h5").is_dir():
            return root
    return None


def detect_layout(src: Path, fmt: str = "auto") -> SourceLayout:
    """Find which layout ``src`` holds. ``fmt`` is ``auto``, ``btcv`` or ``transunet``."""
    if not src.exists():
        raise ConversionError(f"source folder {src} does not exist")
    if not src.is_dir():
        raise ConversionError(f"source {src} is not a folder")
    btcv = _btcv_root(src)
    transunet = _transunet_root(src)
    expected = (
        "expected the BTCV raw layout (RawData/Training/img/imgNNNN.nii.gz + label/labelNNNN.nii.gz) "
        "or the TransUNet layout (train_npz/caseNNNN_sliceSSS.npz + test_vol_h5/caseNNNN.npy.h5)"
    )
    if fmt == "btcv":
        if btcv is None:
            raise ConversionError(f"no BTCV layout found in {src}: {expected}")
        return SourceLayout("btcv", btcv)
    if fmt == "transunet":
        if transunet is None:
            raise ConversionError(f"no TransUNet layout found in {src}: {expected}")
        return SourceLayout("transunet", transunet)
    if fmt != "auto":
        raise ConversionError(f"unknown source format {fmt!r}; use auto, btcv or transunet")
    if btcv is not None and transunet is not None:
        raise ConversionError(
            f"{src} holds both a BTCV layout ({btcv}) and a TransUNet layout ({transunet}); "
            "choose one with --format btcv or --format transunet"
        )
    if btcv is not None:
        return SourceLayout("btcv", btcv)
    if transunet is not None:
        return SourceLayout("transunet", transunet)
    raise ConversionError(f"no Synapse data found in {src}: {expected}")


def _visible_entries(folder: Path) -> List[Path]:
    """Entries of ``folder`` sorted by name, without hidden ones (``.DS_Store``, editor files)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _check_known(case_id: int, path: Path) -> None:
    if case_id not in ALL_CASES:
        raise ConversionError(
            f"{path}: {case_name(case_id)} is not one of the 30 labelled Synapse cases (BTCV 1-10, 21-40)"
        )


def _scan_btcv_folder(folder: Path, pattern: "re.Pattern[str]", example: str) -> Dict[int, Path]:
    found: Dict[int, Path] = {}
    for path in _visible_entries(folder):
        match = pattern.match(path.name)
        if match is None or not path.is_file():
            raise ConversionError(f"unexpected entry {path}: cannot parse a case number (expected {example})")
        case_id = int(match.group(1))
        if case_id in found:
            raise ConversionError(
                f"duplicate case {case_name(case_id)} in {folder}: {found[case_id].name} and {path.name}"
            )
        _check_known(case_id, path)
        found[case_id] = path
    return found


def scan_btcv(root: Path) -> Dict[int, BTCVCase]:
    """Pair ``img/imgNNNN.nii.gz`` with ``label/labelNNNN.nii.gz`` under ``root``; case id -> files."""
    images = _scan_btcv_folder(root / "img", _BTCV_IMAGE_RE, "imgNNNN.nii.gz")
    labels = _scan_btcv_folder(root / "label", _BTCV_LABEL_RE, "labelNNNN.nii.gz")
    if not images and not labels:
        raise ConversionError(f"no cases found in {root / 'img'} and {root / 'label'}: both folders are empty")
    for case_id, image in images.items():
        if case_id not in labels:
            raise ConversionError(
                f"missing label for {case_name(case_id)}: {image} has no "
                f"{root / 'label' / f'label{case_id:04d}.nii.gz'}"
            )
    for case_id, label in labels.items():
        if case_id not in images:
            raise ConversionError(
                f"missing image for {case_name(case_id)}: {label} has no "
                f"{root / 'img' / f'img{case_id:04d}.nii.gz'}"
            )
    return {i: BTCVCase(i, images[i], labels[i]) for i in sorted(images)}


def find_list_dir(root: Path, lists_dir: Optional[Path] = None) -> Optional[Path]:
    """Folder holding TransUNet's ``train.txt`` / ``test_vol.txt``, or None if there is none."""
    if lists_dir is not None:
        if not ((lists_dir / "train.txt").is_file() or (lists_dir / "test_vol.txt").is_file()):
            raise ConversionError(f"list folder {lists_dir} holds neither train.txt nor test_vol.txt")
        return lists_dir
    for rel in _LIST_DIRS:
        candidate = root / rel
        if (candidate / "train.txt").is_file() or (candidate / "test_vol.txt").is_file():
            return candidate
    return None


def _read_list(path: Path, pattern: "re.Pattern[str]", example: str) -> List["re.Match[str]"]:
    """Parse a TransUNet list file: one name per line, blank lines ignored."""
    entries: List["re.Match[str]"] = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConversionError(f"cannot read list file {path}: {err}") from err
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        match = pattern.match(text)
        if match is None:
            raise ConversionError(f"{path} line {number}: cannot parse {text!r} (expected {example})")
        entries.append(match)
    return entries


def _format_numbers(numbers: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f", ... ({len(numbers)} in all)" if len(numbers) > limit else "")


def scan_transunet(root: Path, lists_dir: Optional[Path] = None) -> Dict[int, TransUNetCase]:
    """Collect the cases of a TransUNet release under ``root``; case id -> files.

    Checks file names, duplicate cases/slices, gaps in slice numbers, and agreement with the
    lists when they exist (a listed slice or volume that is absent is a missing-slice error).
    """
    slices: Dict[int, Dict[int, Path]] = {}
    npz_dir = root / "train_npz"
    if npz_dir.is_dir():
        for path in _visible_entries(npz_dir):
            match = _NPZ_RE.match(path.name)
            if match is None or not path.is_file():
                raise ConversionError(
                    f"unexpected entry {path}: cannot parse case and slice numbers (expected caseNNNN_sliceSSS.npz)"
                )
            case_id, slice_no = int(match.group(1)), int(match.group(2))
            _check_known(case_id, path)
            per_case = slices.setdefault(case_id, {})
            if slice_no in per_case:
                raise ConversionError(
                    f"duplicate slice {slice_no} of {case_name(case_id)} in {npz_dir}: "
                    f"{per_case[slice_no].name} and {path.name}"
                )
            per_case[slice_no] = path

    volumes: Dict[int, Path] = {}
    h5_dir = root / "test_vol_h5"
    if h5_dir.is_dir():
        for path in _visible_entries(h5_dir):
            match = _H5_RE.match(path.name)
            if match is None or not path.is_file():
                raise ConversionError(
                    f"unexpected entry {path}: cannot parse a case number (expected caseNNNN.npy.h5)"
                )
            case_id = int(match.group(1))
            _check_known(case_id, path)
            if case_id in volumes:
                raise ConversionError(
                    f"duplicate case {case_name(case_id)} in {h5_dir}: {volumes[case_id].name} and {path.name}"
                )
            if case_id in slices:
                raise ConversionError(
                    f"duplicate case {case_name(case_id)}: both {path} and slices in {npz_dir}"
                )
            volumes[case_id] = path

    if not slices and not volumes:
        raise ConversionError(f"no cases found in {npz_dir} or {h5_dir}: the folders are empty or missing")

    list_dir = find_list_dir(root, lists_dir)
    if list_dir is None:
        logger.warning(
            "no TransUNet lists (train.txt, test_vol.txt) found beside %s or in lists/lists_Synapse; "
            "slices are only checked for gaps in their numbering",
            root,
        )
    else:
        _check_against_lists(list_dir, slices, volumes, npz_dir, h5_dir)

    for case_id, per_case in slices.items():
        expected = range(max(per_case) + 1)
        gaps = [s for s in expected if s not in per_case]
        if gaps:
            raise ConversionError(
                f"missing slices in {case_name(case_id)}: slice(s) {_format_numbers(gaps)} absent from {npz_dir} "
                f"(found {len(per_case)} slices numbered up to {max(per_case)})"
            )

    for case_id in sorted(slices):
        if split_of(case_id) != "train":
            logger.warning(
                "%s is a test case of the TransUNet split but sits in %s; it is converted and kept in the "
                "test (validation) set", case_name(case_id), npz_dir,
            )
    for case_id in sorted(volumes):
        if split_of(case_id) != "test":
            logger.warning(
                "%s is a training case of the TransUNet split but sits in %s; it is converted and kept in the "
                "training set", case_name(case_id), h5_dir,
            )

    cases: Dict[int, TransUNetCase] = {}
    for case_id, per_case in slices.items():
        cases[case_id] = TransUNetCase(case_id, "npz", tuple(per_case[s] for s in sorted(per_case)))
    for case_id, path in volumes.items():
        cases[case_id] = TransUNetCase(case_id, "h5", (path,))
    return dict(sorted(cases.items()))


def _check_against_lists(
    list_dir: Path,
    slices: Dict[int, Dict[int, Path]],
    volumes: Dict[int, Path],
    npz_dir: Path,
    h5_dir: Path,
) -> None:
    train_list = list_dir / "train.txt"
    if train_list.is_file():
        listed = [
            (int(m.group(1)), int(m.group(2))) for m in _read_list(train_list, _LIST_SLICE_RE, "caseNNNN_sliceSSS")
        ]
        listed_set = set(listed)
        missing: Dict[int, List[int]] = {}
        for case_id, slice_no in listed:
            if slice_no not in slices.get(case_id, {}):
                missing.setdefault(case_id, []).append(slice_no)
        for case_id, numbers in sorted(missing.items()):
            if case_id in slices:
                raise ConversionError(
                    f"missing slices in {case_name(case_id)}: {train_list} lists slice(s) "
                    f"{_format_numbers(sorted(numbers))} that are not in {npz_dir}"
                )
        absent_cases = sorted(missing)
        if absent_cases:
            # Whole cases absent: the missing-case policy (warn, split from what exists) applies.
            logger.warning(
                "%s lists %d case(s) without any slice in %s: %s",
                train_list, len(absent_cases), npz_dir, ", ".join(case_name(i) for i in absent_cases),
            )
        unlisted = sorted({c for c, per_case in slices.items() for s in per_case if (c, s) not in listed_set})
        if unlisted:
            logger.warning(
                "%s holds slices that %s does not list, in %s; they are converted anyway",
                npz_dir, train_list, ", ".join(case_name(i) for i in unlisted),
            )
    test_list = list_dir / "test_vol.txt"
    if test_list.is_file():
        listed_cases = [int(m.group(1)) for m in _read_list(test_list, _LIST_CASE_RE, "caseNNNN")]
        absent = sorted(i for i in set(listed_cases) if i not in volumes)
        if absent:
            logger.warning(
                "%s lists %d volume(s) missing from %s: %s",
                test_list, len(absent), h5_dir, ", ".join(case_name(i) for i in absent),
            )
        unlisted = sorted(i for i in volumes if i not in set(listed_cases))
        if unlisted:
            logger.warning(
                "%s holds volumes that %s does not list: %s; they are converted anyway",
                h5_dir, test_list, ", ".join(case_name(i) for i in unlisted),
            )


__all__ = [
    "FORMATS",
    "BTCVCase",
    "TransUNetCase",
    "SourceLayout",
    "detect_layout",
    "scan_btcv",
    "scan_transunet",
    "find_list_dir",
]
