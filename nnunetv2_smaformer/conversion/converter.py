"""Convert a Synapse source release (BTCV raw or TransUNet npz/h5) into an nnU-Net v2 raw dataset.

Output, for dataset id ``ID``::

    $nnUNet_raw/DatasetID_Synapse/
        dataset.json                      channel "CT", labels 0-8 (benchmark organs)
        imagesTr/caseNNNN_0000.nii.gz     all converted cases (NNNN = BTCV number)
        labelsTr/caseNNNN.nii.gz
        imagesTs/, labelsTs/              relative symlinks to the test cases' files in *Tr
        splits_final.json                 copy of the split below (nnU-Net's planner copies it too)
    $nnUNet_preprocessed/DatasetID_Synapse/splits_final.json
                                          fold 0 = TransUNet split (train 18 / val 12)

Arrays follow SimpleITK's convention: ``sitk.GetArrayFromImage`` gives (z, y, x). How each source
format reads and converts its cases is in :mod:`.btcv` and :mod:`.transunet`.

:func:`convert_synapse` runs the three steps of :mod:`.nnunet_dataset`: :func:`plan_conversion` checks everything
that can be checked before any work (arguments, environment, source layout and cases, existing data);
:func:`build_dataset` converts every case into a hidden temporary folder inside ``$nnUNet_raw``;
:func:`publish_dataset` installs the split and renames the folder into place. A failure at any
step leaves nothing behind.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunetv2_smaformer.conversion.cases import CaseResult, SourceFormat, Spacing
from nnunetv2_smaformer.conversion.nnunet_dataset import (
    SPLITS_FILE,
    DatasetTarget,
    build,
    dataset_target,
    default_num_processes,
    link_or_copy,
    one_itk_thread,
    publish,
    refuse_existing,
    write_json,
)
from nnunetv2_smaformer.conversion.sources import detect_layout
from nnunetv2_smaformer.conversion.synapse_raw import FILE_ENDING, make_dataset_json
from nnunetv2_smaformer.errors import ConversionError
from nnunetv2_smaformer.parallel import run_tasks
from nnunetv2_smaformer.synapse import (
    BENCHMARK_LABELS,
    DATASET_NAME,
    TEST_CASES,
    TRAIN_CASES,
    case_name,
    format_case_list,
    make_splits,
    missing_cases,
)

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class ConversionPlan:
    """Everything :func:`plan_conversion` checked: what to convert and where it goes."""

    source: SourceFormat
    source_root: Path
    cases: dict[int, object]  # case id -> the source format's case record
    spacing: Spacing
    target: DatasetTarget
    missing_train: list[int]
    missing_test: list[int]

    @property
    def test_cases(self) -> list[int]:
        return [i for i in self.cases if i in TEST_CASES]


@dataclass(frozen=True)
class BuiltDataset:
    """A complete dataset in a temporary folder, waiting to be published."""

    folder: Path
    results: list[CaseResult]
    splits: list[dict[str, list[str]]]
    link_kinds: set[str]


@dataclass
class ConversionSummary:
    """Result of :func:`convert_synapse`."""

    dataset_dir: Path
    splits_file: Path
    source_format: str
    cases: list[int]
    missing_train: list[int]
    missing_test: list[int]
    num_slices: int
    voxels_per_label: dict[str, int] = field(default_factory=dict)

    @property
    def train_cases(self) -> list[int]:
        return [i for i in self.cases if i in TRAIN_CASES]

    @property
    def test_cases(self) -> list[int]:
        return [i for i in self.cases if i in TEST_CASES]


def _convert_task(task: tuple[Callable[..., CaseResult], object, Path, Path, Spacing]) -> CaseResult:
    convert_case, case, images_dir, labels_dir, spacing = task
    return convert_case(case, images_dir, labels_dir, spacing)


def plan_conversion(
    src: Path | str,
    dataset_id: int,
    fmt: str = "auto",
    overwrite: bool = False,
    spacing: Sequence[float] | None = None,
    require_all: bool = False,
    lists_dir: Path | str | None = None,
) -> ConversionPlan:
    """Check the arguments, the environment, the source and the destination; convert nothing.

    Raises:
        ConversionError: naming what is wrong (the id, a variable, a file, a case, existing data).
    """
    target = dataset_target(dataset_id, DATASET_NAME)

    layout = detect_layout(Path(src), fmt)
    spacing_xyz = layout.source.check_spacing(spacing)
    cases = dict(layout.source.scan(layout.root, Path(lists_dir) if lists_dir is not None else None))
    logger.info("found %d %s case(s) in %s", len(cases), layout.fmt, layout.root)

    missing_train, missing_test = missing_cases(cases)
    for kind, missing in (("training", missing_train), ("test", missing_test)):
        if missing:
            message = f"{len(missing)} Synapse {kind} case(s) missing from {layout.root}: {format_case_list(missing)}"
            if require_all:
                raise ConversionError(message + " (--require-all)")
            logger.warning("%s; the split is built from the cases present", message)
    present_train = [i for i in cases if i in TRAIN_CASES]
    present_test = [i for i in cases if i in TEST_CASES]
    if not present_train or not present_test:
        raise ConversionError(
            f"{layout.root} has {len(present_train)} training and {len(present_test)} test case(s); "
            "the TransUNet split needs at least one of each"
        )

    refuse_existing(target, overwrite)  # before doing any work
    return ConversionPlan(layout.source, layout.root, cases, spacing_xyz, target, missing_train, missing_test)


def build_dataset(plan: ConversionPlan, num_processes: int, progress: bool) -> BuiltDataset:
    """Convert every case into a new hidden folder in ``$nnUNet_raw``, with links, dataset.json and splits.

    The folder is removed again when anything fails.
    """

    def fill(folders: dict[str, Path]) -> tuple[list[CaseResult], list[dict[str, list[str]]], set[str]]:
        tasks = [(plan.source.convert_case, case, folders["imagesTr"], folders["labelsTr"], plan.spacing)
                 for case in plan.cases.values()]
        results = sorted(run_tasks(_convert_task, tasks, num_processes, progress, desc="Converting Synapse",
                                   initializer=one_itk_thread, spawn=True),
                         key=lambda r: r.case_id)
        link_kinds = set()
        for case_id in plan.test_cases:
            case = case_name(case_id)
            for sub, file_name in (("images", f"{case}_0000{FILE_ENDING}"), ("labels", f"{case}{FILE_ENDING}")):
                link_kinds.add(link_or_copy(folders[f"{sub}Tr"] / file_name, folders[f"{sub}Ts"] / file_name))
        if "copy" in link_kinds:
            logger.warning("this file system supports neither symbolic nor hard links; test cases were copied")
        splits = make_splits(plan.cases)
        write_json(folders["root"] / "dataset.json", make_dataset_json(
            len(results), plan.source.name, plan.source.spacing_note(plan.spacing),
            extra={"numTest": len(plan.test_cases), "test_cases": splits[0]["val"]}))
        write_json(folders["root"] / SPLITS_FILE, splits)
        return results, splits, link_kinds

    folder, (results, splits, link_kinds) = build(plan.target, fill)
    return BuiltDataset(folder, results, splits, link_kinds)


def publish_dataset(plan: ConversionPlan, built: BuiltDataset) -> ConversionSummary:
    """Install ``splits_final.json`` in ``$nnUNet_preprocessed`` and rename the built folder into place
    (replacing the old dataset with ``overwrite``); undone when the rename fails."""
    splits_file = publish(plan.target, built.folder, built.splits)
    totals = np.sum([r.voxels_per_label for r in built.results], axis=0)
    summary = ConversionSummary(
        dataset_dir=plan.target.dest,
        splits_file=splits_file,
        source_format=plan.source.name,
        cases=[r.case_id for r in built.results],
        missing_train=plan.missing_train,
        missing_test=plan.missing_test,
        num_slices=int(sum(r.shape_zyx[0] for r in built.results)),
        voxels_per_label={
            name: int(totals[value]) for value, name in [(0, "background")] + sorted(BENCHMARK_LABELS.items())
        },
    )
    _log_summary(summary, built.link_kinds)
    return summary


def convert_synapse(
    src: Path | str,
    dataset_id: int,
    fmt: str = "auto",
    overwrite: bool = False,
    spacing: Sequence[float] | None = None,
    num_processes: int | None = None,
    require_all: bool = False,
    lists_dir: Path | str | None = None,
    progress: bool = True,
) -> ConversionSummary:
    """Convert the Synapse release in ``src`` into ``$nnUNet_raw/Dataset{ID:03d}_Synapse``.

    ``fmt``: ``auto``, ``btcv`` or ``transunet``. ``spacing``: (x, y, z) mm for TransUNet volumes
    (default :data:`~nnunetv2_smaformer.conversion.synapse.SYNAPSE_SPACING`). Missing
    cases are logged as warnings and the split is built from the cases present, unless
    ``require_all`` makes them an error. Raises :class:`ConversionError` on any problem; then
    nothing is left in nnUNet_raw/nnUNet_preprocessed.
    """
    plan = plan_conversion(src, dataset_id, fmt=fmt, overwrite=overwrite, spacing=spacing,
                           require_all=require_all, lists_dir=lists_dir)
    workers = default_num_processes() if num_processes is None else max(1, int(num_processes))
    return publish_dataset(plan, build_dataset(plan, workers, progress))


def _log_summary(summary: ConversionSummary, link_kinds: Iterable[str]) -> None:
    logger.info(
        "converted %d case(s) from the %s layout into %s: %d training, %d test, %d slices in all",
        len(summary.cases), summary.source_format, summary.dataset_dir,
        len(summary.train_cases), len(summary.test_cases), summary.num_slices,
    )
    logger.info(
        "voxels per label: %s",
        ", ".join(f"{value} {name}={count}" for value, (name, count) in enumerate(summary.voxels_per_label.items())),
    )
    logger.info(
        "split (fold 0 of %s): train %d [%s], val %d [%s]; test cases linked in imagesTs/labelsTs (%s)",
        summary.splits_file, len(summary.train_cases), format_case_list(summary.train_cases),
        len(summary.test_cases), format_case_list(summary.test_cases), ", ".join(sorted(link_kinds)) or "none",
    )
    missing = summary.missing_train + summary.missing_test
    if missing:
        logger.warning(
            "incomplete Synapse: %d of 30 cases missing (training: %s; test: %s)",
            len(missing), format_case_list(summary.missing_train) or "none",
            format_case_list(summary.missing_test) or "none",
        )
