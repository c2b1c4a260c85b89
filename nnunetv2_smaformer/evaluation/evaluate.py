"""Synapse evaluation of a folder of predicted segmentations against reference segmentations.

Files are matched by name (``pred/case.nii.gz`` <-> ``gt/case.nii.gz``); every prediction is
evaluated and must have a reference, extra references are ignored (so ``gt`` may be a full
``labelsTr``). Cases run in parallel processes (:func:`nnunetv2_smaformer.parallel.run_tasks`);
the per-case rule and HD95 are in :mod:`nnunetv2_smaformer.evaluation.metrics`, the benchmark's
labels and protocol in :mod:`nnunetv2_smaformer.synapse`. Only numpy, scipy, SimpleITK and tqdm
are imported, never torch or nnU-Net, so the command starts fast.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunetv2_smaformer.errors import EvaluationError
from nnunetv2_smaformer.evaluation.io import read_scalar_image
from nnunetv2_smaformer.evaluation.metrics import MetricPair, case_metrics
from nnunetv2_smaformer.markdown import table
from nnunetv2_smaformer.parallel import run_tasks
from nnunetv2_smaformer.paths import PathLike
from nnunetv2_smaformer.synapse import BENCHMARK_LABELS, HD95_UNITS

logger = logging.getLogger(__name__)


#: Labels of the 8-organ Synapse benchmark (TransUNet protocol), used without a dataset.json;
#: the same names the Synapse conversion writes into its dataset.json.
SYNAPSE_BENCHMARK_ORGANS: dict[int, str] = dict(BENCHMARK_LABELS)

#: File endings recognised when no dataset.json gives ``file_ending`` (longest first).
DEFAULT_FILE_ENDINGS: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".nrrd")

DEFAULT_OUTPUT_NAME = "synapse_eval.json"

# Relative tolerance for spacing equality: nnU-Net writes spacings back as float32/float64.
_SPACING_RTOL = 1e-4


@dataclass(frozen=True)
class DatasetInfo:
    """What the evaluation uses from an nnU-Net ``dataset.json``."""

    label_names: dict[int, str]  # positive labels only, ascending
    file_ending: str | None


@dataclass
class EvaluationResult:
    """Per-case metrics plus the aggregation the benchmark tables use.

    ``per_case[case][label] = (dice, hd95)``; a label's mean is over cases, the overall mean
    is over labels (of those per-label means).
    """

    per_case: dict[str, dict[int, MetricPair]]
    labels: list[int]
    label_names: dict[int, str]
    hd95_unit: str
    per_label: dict[int, MetricPair] = field(init=False)
    mean: MetricPair = field(init=False)

    def __post_init__(self) -> None:
        self.per_label = {}
        for label in self.labels:
            values = np.array([self.per_case[case][label] for case in self.per_case], dtype=np.float64)
            self.per_label[label] = (float(values[:, 0].mean()), float(values[:, 1].mean()))
        label_means = np.array([self.per_label[label] for label in self.labels], dtype=np.float64)
        self.mean = (float(label_means[:, 0].mean()), float(label_means[:, 1].mean()))

    def name(self, label: int) -> str:
        return self.label_names.get(label, f"label {label}")

    def to_json(self) -> dict:
        """JSON-ready dict; label keys are strings (``"1"``), values plain floats."""
        return {
            "per_case": {
                case: {str(label): {"dice": d, "hd95": h} for label, (d, h) in values.items()}
                for case, values in self.per_case.items()
            },
            "per_label": {
                str(label): {"name": self.name(label), "dice": d, "hd95": h}
                for label, (d, h) in self.per_label.items()
            },
            "mean": {"dice": self.mean[0], "hd95": self.mean[1]},
            "hd95_unit": self.hd95_unit,
            "n_cases": len(self.per_case),
        }

    def to_markdown(self) -> str:
        """Markdown table: one row per label (DSC in %, HD95 in ``hd95_unit``) plus the mean."""
        return "\n".join(organ_table({"": self})) + "\n"


def organ_table(results: Mapping[str, EvaluationResult]) -> list[str]:
    """Markdown table lines: one row per label of the first result, a DSC (%) and an HD95 column per
    result (headed by its key, none for ``""``), then the mean row. All results share one HD95 unit."""
    keys = list(results)
    first = results[keys[0]]
    unit = "voxels" if first.hd95_unit == "voxel" else "mm"

    def heads(metric: str) -> list[str]:
        return [f"{metric} {key}".rstrip() for key in keys]

    rows = [[str(label), first.name(label), *(f"{100 * results[k].per_label[label][0]:.2f}" for k in keys),
             *(f"{results[k].per_label[label][1]:.2f}" for k in keys)] for label in first.labels]
    rows.append(["", "**mean**", *(f"**{100 * results[k].mean[0]:.2f}**" for k in keys),
                 *(f"**{results[k].mean[1]:.2f}**" for k in keys)])
    return table(["Label", "Organ", *heads("DSC (%)"), *heads(f"HD95 ({unit})")], rows,
                 ["---:", ":---", *["---:"] * (2 * len(keys))])


def read_dataset_json(path: PathLike) -> DatasetInfo:
    """Positive labels (value -> name) and ``file_ending`` of an nnU-Net v2 ``dataset.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise EvaluationError(f"cannot read dataset.json {path}: {err}") from err
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise EvaluationError(f"{path} has no 'labels' dict (name -> int)")
    names: dict[int, str] = {}
    for name, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, int):
            # Region-based training lists label groups; the benchmark needs plain labels.
            raise EvaluationError(f"{path}: label {name!r} is {value!r}, expected an integer")
        if value > 0:
            names[value] = str(name)
    file_ending = data.get("file_ending")
    return DatasetInfo(dict(sorted(names.items())), file_ending if isinstance(file_ending, str) else None)


def resolve_labels(
    labels: Sequence[int] | None, dataset: DatasetInfo | None
) -> tuple[list[int], dict[int, str]]:
    """Labels to evaluate and their names.

    ``labels`` wins if given; else all positive labels of the dataset.json; else the 8 Synapse
    benchmark organs 1..8. Names come from the dataset.json, else the Synapse benchmark names.
    """
    names = dict(dataset.label_names) if dataset is not None else dict(SYNAPSE_BENCHMARK_ORGANS)
    if labels:
        chosen = sorted({int(label) for label in labels})
        if chosen[0] <= 0:
            raise EvaluationError(f"labels must be positive integers, got {list(labels)}")
    elif dataset is not None:
        chosen = list(dataset.label_names)
    else:
        chosen = sorted(SYNAPSE_BENCHMARK_ORGANS)
    if not chosen:
        raise EvaluationError("no labels to evaluate")
    return chosen, {label: names[label] for label in chosen if label in names}


def _natural_key(text: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _case_id(file_name: str, endings: Sequence[str]) -> str | None:
    for ending in endings:
        if file_name.endswith(ending) and len(file_name) > len(ending):
            return file_name[: -len(ending)]
    return None


def find_case_pairs(
    pred_dir: PathLike, gt_dir: PathLike, file_ending: str | None = None
) -> list[tuple[str, Path, Path]]:
    """Match each prediction file to the reference file of the same name.

    Args:
        pred_dir, gt_dir: folders of label maps.
        file_ending: e.g. ``".nii.gz"``; ``None`` accepts :data:`DEFAULT_FILE_ENDINGS`.

    Returns:
        ``(case_id, pred_path, gt_path)`` in natural case order.

    Raises:
        EvaluationError: a folder is missing, there is no prediction, or a prediction has no
            reference file.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for role, folder in (("prediction", pred_dir), ("ground-truth", gt_dir)):
        if not folder.is_dir():
            raise EvaluationError(f"{role} folder {folder} does not exist")
    endings = (file_ending,) if file_ending else DEFAULT_FILE_ENDINGS
    pairs = []
    missing = []
    for pred_path in sorted(pred_dir.iterdir(), key=lambda p: _natural_key(p.name)):
        case = _case_id(pred_path.name, endings)
        if case is None or not pred_path.is_file():
            continue
        gt_path = gt_dir / pred_path.name
        if gt_path.is_file():
            pairs.append((case, pred_path, gt_path))
        else:
            missing.append(pred_path.name)
    if missing:
        raise EvaluationError(
            f"no ground truth in {gt_dir} for prediction(s): {', '.join(missing)}"
        )
    if not pairs:
        raise EvaluationError(
            f"no prediction files ({' / '.join(endings)}) in {pred_dir}"
        )
    return pairs


def _read_header(path: Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Array shape ``(z, y, x)`` and spacing ``(sz, sy, sx)`` from a file header only."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise EvaluationError(f"cannot read {path}: {err}".splitlines()[0]) from err
    # SimpleITK reports (x, y, z); numpy arrays from it are (z, y, x).
    return tuple(reversed(reader.GetSize())), tuple(reversed(reader.GetSpacing()))


def check_pair_headers(case_pairs: Sequence[tuple[str, Path, Path]]) -> None:
    """Fail early, naming the file, when a prediction's shape or spacing differs from its reference."""
    for _case, pred_path, gt_path in case_pairs:
        pred_shape, pred_spacing = _read_header(pred_path)
        gt_shape, gt_spacing = _read_header(gt_path)
        if pred_shape != gt_shape:
            raise EvaluationError(
                f"shape mismatch for {pred_path.name}: prediction {pred_shape} vs ground truth "
                f"{gt_shape} (z, y, x) in {gt_path}"
            )
        if not np.allclose(pred_spacing, gt_spacing, rtol=_SPACING_RTOL, atol=0.0):
            raise EvaluationError(
                f"spacing mismatch for {pred_path.name}: prediction {pred_spacing} vs ground truth "
                f"{gt_spacing} (z, y, x) in {gt_path}"
            )


def evaluate_case(
    pred_path: PathLike, gt_path: PathLike, labels: Sequence[int], hd95_unit: str = "voxel"
) -> dict[int, MetricPair]:
    """Metrics of one prediction file against its reference file (runs in a worker process).

    Returns ``{label: (dice, hd95)}``; HD95 in voxels or, for ``hd95_unit="mm"``, in the
    files' physical units using the spacing of the reference.
    """
    pred_path, gt_path = Path(pred_path), Path(gt_path)
    pred, _ = read_scalar_image(pred_path, "prediction")
    gt, spacing = read_scalar_image(gt_path, "ground truth")
    if pred.shape != gt.shape:
        raise EvaluationError(f"shape mismatch for {pred_path.name}: {pred.shape} vs {gt.shape}")
    try:
        return case_metrics(pred, gt, labels, spacing if hd95_unit == "mm" else None)
    except ValueError as err:
        raise EvaluationError(f"{pred_path.name}: {err}") from err


def default_jobs(n_cases: int) -> int:
    """Worker count: the CPUs this process may use, at most one per case."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_cases))


def evaluate_folders(
    pred_dir: PathLike,
    gt_dir: PathLike,
    labels: Sequence[int] | None = None,
    dataset_json: PathLike | None = None,
    hd95_unit: str = "voxel",
    jobs: int | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate every prediction in ``pred_dir`` against the same-named file in ``gt_dir``.

    Args:
        labels: organ labels to evaluate; default: see :func:`resolve_labels`.
        dataset_json: nnU-Net ``dataset.json`` for labels, names and file ending; when ``None``
            and ``pred_dir/dataset.json`` exists (``nnUNetv2_predict`` writes one), that is used.
        hd95_unit: ``"voxel"`` (published tables) or ``"mm"`` (from the reference's spacing).
        jobs: worker processes; ``None`` -> :func:`default_jobs`, ``1`` runs in-process.
        progress: show a tqdm bar on stderr.

    Raises:
        EvaluationError: missing/mismatched/unreadable files or bad arguments.
    """
    if hd95_unit not in HD95_UNITS:
        raise EvaluationError(f"hd95_unit must be one of {HD95_UNITS}, got {hd95_unit!r}")
    if dataset_json is None and (Path(pred_dir) / "dataset.json").is_file():
        dataset_json = Path(pred_dir) / "dataset.json"
        logger.info("using labels from %s", dataset_json)
    dataset = read_dataset_json(dataset_json) if dataset_json is not None else None
    chosen, names = resolve_labels(labels, dataset)
    pairs = find_case_pairs(pred_dir, gt_dir, dataset.file_ending if dataset else None)
    check_pair_headers(pairs)
    n_jobs = default_jobs(len(pairs)) if jobs is None else max(1, min(int(jobs), len(pairs)))
    logger.info(
        "evaluating %d case(s), labels %s, HD95 in %s, %d process(es)",
        len(pairs), chosen, hd95_unit, n_jobs,
    )

    tasks = [(pred_path, gt_path, tuple(chosen), hd95_unit) for _, pred_path, gt_path in pairs]
    results = run_tasks(_evaluate_task, tasks, n_jobs, progress, desc="evaluate")
    per_case = {case: metrics for (case, _, _), metrics in zip(pairs, results)}
    return EvaluationResult(per_case, chosen, names, hd95_unit)


def _evaluate_task(task: tuple[Path, Path, tuple[int, ...], str]) -> dict[int, MetricPair]:
    return evaluate_case(*task)


def output_paths(json_path: PathLike) -> tuple[Path, Path, Path]:
    """``(OUT.json, OUT.csv, OUT.md)`` for a requested JSON path."""
    json_path = Path(json_path)
    return json_path, json_path.with_suffix(".csv"), json_path.with_suffix(".md")


def write_outputs(result: EvaluationResult, json_path: PathLike) -> tuple[Path, Path, Path]:
    """Write the JSON, a CSV (case x label rows, then per-label and overall mean rows) and the
    Markdown table next to each other; returns their paths."""
    json_path, csv_path, md_path = output_paths(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "label", "name", "dice", "hd95"])
        for case, values in result.per_case.items():
            for label, (d, h) in values.items():
                writer.writerow([case, label, result.name(label), repr(float(d)), repr(float(h))])
        for label, (d, h) in result.per_label.items():
            writer.writerow(["mean", label, result.name(label), repr(float(d)), repr(float(h))])
        writer.writerow(["mean", "all", "mean", repr(float(result.mean[0])), repr(float(result.mean[1]))])
    n = len(result.per_case)
    unit = "voxels" if result.hd95_unit == "voxel" else "mm"
    md_path.write_text(
        f"Synapse evaluation: {n} case(s), HD95 in {unit}; mean over cases per organ, then over "
        f"organs.\n\n{result.to_markdown()}",
        encoding="utf-8",
    )
    return json_path, csv_path, md_path
