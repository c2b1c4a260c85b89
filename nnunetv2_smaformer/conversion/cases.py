"""What every Synapse source format shares: the source-format interface, one folder scan that
parses case (and slice) numbers from file names, label checks and the per-case result.

Each format (:mod:`.btcv`, :mod:`.transunet`) owns how its files are found, read and converted;
:mod:`.sources` picks the format, :mod:`.converter` runs the conversion.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_smaformer.errors import ConversionError
from nnunetv2_smaformer.synapse import ALL_CASES, MAX_BENCHMARK_LABEL, case_name

Spacing = tuple[float, float, float] | None


@dataclass(frozen=True)
class CaseResult:
    """What one converted case contributes to the summary."""

    case_id: int
    shape_zyx: tuple[int, int, int]
    voxels_per_label: tuple[int, ...]  # benchmark labels 0-8


@dataclass(frozen=True)
class SourceFormat:
    """One layout of a Synapse release and the functions that handle it.

    ``find_root(src)``: the folder the layout starts in, or None. ``scan(root, lists_dir)``: case id
    -> that format's case record (file names checked, contents not). ``check_spacing(spacing)``: the
    spacing to give converted volumes, or None when the files carry theirs. ``convert_case(case,
    images_dir, labels_dir, spacing)``: writes one case, returns its :class:`CaseResult`; it runs in
    worker processes, so it is a module-level function. ``spacing_note(spacing)``: for dataset.json.
    """

    name: str  # for --format
    title: str  # for messages
    find_root: Callable[[Path], Path | None]
    scan: Callable[[Path, Path | None], dict[int, object]]
    check_spacing: Callable[[tuple[float, ...] | None], Spacing]
    convert_case: Callable[[object, Path, Path, Spacing], CaseResult]
    spacing_note: Callable[[Spacing], str]


def first_root(src: Path, candidates: Sequence[str], holds_layout: Callable[[Path], bool]) -> Path | None:
    """The first of ``src / candidate`` that holds a layout, or None."""
    return next((src / rel for rel in candidates if holds_layout(src / rel)), None)


def visible_entries(folder: Path) -> list[Path]:
    """Entries of ``folder`` sorted by name, without hidden ones (``.DS_Store``, editor files)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def scan_folder(folder: Path, pattern: re.Pattern[str], expected: str) -> dict[tuple[int, ...], Path]:
    """Files of ``folder`` by the numbers their names hold: ``(case,)`` or ``(case, slice)``.

    ``pattern`` has a named group ``case`` and optionally ``slice``. Every visible entry must be a
    file whose name matches (else ``expected`` is named), of one of the 30 Synapse cases, and no
    key may occur twice.
    """
    with_slices = "slice" in pattern.groupindex
    found: dict[tuple[int, ...], Path] = {}
    for path in visible_entries(folder):
        match = pattern.match(path.name)
        if match is None or not path.is_file():
            numbers = "case and slice numbers" if with_slices else "a case number"
            raise ConversionError(f"unexpected entry {path}: cannot parse {numbers} (expected {expected})")
        key = (int(match.group("case")), int(match.group("slice"))) if with_slices else (int(match.group("case")),)
        case_id = key[0]
        if case_id not in ALL_CASES:
            raise ConversionError(
                f"{path}: {case_name(case_id)} is not one of the 30 labelled Synapse cases (BTCV 1-10, 21-40)"
            )
        if key in found:
            what = f"slice {key[1]} of {case_name(case_id)}" if with_slices else f"case {case_name(case_id)}"
            raise ConversionError(f"duplicate {what} in {folder}: {found[key].name} and {path.name}")
        found[key] = path
    return found


def check_label_values(label: np.ndarray, max_label: int, path: Path, case: str) -> np.ndarray:
    """Return ``label`` as uint8 after checking it holds only integers 0..max_label; errors name ``case`` and
    ``path``."""
    if label.dtype.kind == "f":
        if not np.all(np.isfinite(label)):
            raise ConversionError(f"{case}: label {path} contains NaN or infinite values")
        if not np.array_equal(label, np.round(label)):
            raise ConversionError(f"{case}: label {path} contains non-integer values")
    elif label.dtype.kind not in "iub":
        raise ConversionError(f"{case}: label {path} has unsupported data type {label.dtype}")
    low, high = label.min(initial=0), label.max(initial=0)
    if low < 0 or high > max_label:
        values = np.unique(label)
        bad = [int(v) for v in values if v < 0 or v > max_label][:10]  # integral: checked above
        raise ConversionError(f"{case}: label {path} holds value(s) {bad} outside the expected 0-{max_label}")
    return label.astype(np.uint8)


def case_result(case_id: int, label: np.ndarray) -> CaseResult:
    """The summary of a converted case from its benchmark label volume ``(z, y, x)``."""
    counts = tuple(int(c) for c in np.bincount(label.ravel(), minlength=MAX_BENCHMARK_LABEL + 1))
    return CaseResult(case_id, tuple(int(s) for s in label.shape), counts)
