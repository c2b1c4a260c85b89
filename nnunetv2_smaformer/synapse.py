"""Facts of the Synapse (BTCV multi-organ CT) benchmark: labels, the TransUNet split, the protocol.

A leaf module (no numpy, no package imports) shared by conversion and evaluation.

* Cases: the 30 labelled BTCV training CTs, numbered 1-10 and 21-40. nnU-Net case names are
  ``caseNNNN`` with the same number, which is also how TransUNet names them.
* Split (TransUNet's): 18 training cases and 12 test cases.
* Labels: the raw release has 13 organs; the benchmark keeps 8 of them, renumbered 1-8
  (:data:`BTCV_TO_BENCHMARK`); the other five become background.
* Protocol (TransUNet's ``calculate_metric_percase``): per case and organ, Dice and HD95 when both
  prediction and reference hold the organ, (1, 0) when only the prediction does, (0, 0) when the
  prediction does not; the mean over cases per organ, then over organs. Published tables give
  HD95 in voxels of the original volumes.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

#: The 13 organs of the BTCV raw release, by their label value there.
BTCV_LABELS: dict[int, str] = {
    1: "spleen",
    2: "right_kidney",
    3: "left_kidney",
    4: "gallbladder",
    5: "esophagus",
    6: "liver",
    7: "stomach",
    8: "aorta",
    9: "inferior_vena_cava",
    10: "portal_and_splenic_vein",
    11: "pancreas",
    12: "right_adrenal_gland",
    13: "left_adrenal_gland",
}

#: The 8 organs of the TransUNet benchmark protocol, by their label value in the converted data.
BENCHMARK_LABELS: dict[int, str] = {
    1: "aorta",
    2: "gallbladder",
    3: "left_kidney",
    4: "right_kidney",
    5: "liver",
    6: "pancreas",
    7: "spleen",
    8: "stomach",
}

#: BTCV label -> benchmark label. BTCV labels absent here (esophagus, IVC, veins, adrenals) become 0.
BTCV_TO_BENCHMARK: dict[int, int] = {8: 1, 4: 2, 3: 3, 2: 4, 6: 5, 11: 6, 1: 7, 7: 8}

#: Largest label value of each source release (0 is background in both).
MAX_BTCV_LABEL = 13
MAX_BENCHMARK_LABEL = 8

#: TransUNet split: 12 test and 18 training cases, by BTCV number.
TEST_CASES: tuple[int, ...] = (1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38)
TRAIN_CASES: tuple[int, ...] = (5, 6, 7, 9, 10, 21, 23, 24, 26, 27, 28, 30, 31, 33, 34, 37, 39, 40)
#: All 30 labelled BTCV training CTs (1-10, 21-40), sorted.
ALL_CASES: tuple[int, ...] = tuple(sorted(TEST_CASES + TRAIN_CASES))

#: The abdominal CT window in HU that TransUNet clipped intensities to (and scaled to [0, 1]); overlays show CT in it.
HU_WINDOW: tuple[float, float] = (-125.0, 275.0)

#: HD95 units of the protocol: voxels (the published tables) or millimetres (from the reference's spacing).
HD95_UNITS: tuple[str, ...] = ("voxel", "mm")

#: Synapse's typical geometry: 512x512 slices of about 0.76 mm, 3 mm apart, 85 to 198 slices a case. The
#: spacing (x, y, z mm) is given to volumes of the TransUNet release, which stores none, and to phantoms
#: with Synapse's geometry.
SYNAPSE_SLICE_SIZE = 512
SYNAPSE_SPACING: tuple[float, float, float] = (0.76, 0.76, 3.0)
SYNAPSE_MIN_SLICES = 80

#: nnU-Net dataset name suffix.
DATASET_NAME = "Synapse"


def case_name(case_id: int) -> str:
    """nnU-Net/TransUNet case identifier of BTCV case ``case_id``, e.g. ``3 -> "case0003"``."""
    return f"case{case_id:04d}"


def dataset_folder_name(dataset_id: int) -> str:
    """nnU-Net dataset folder name, e.g. ``Dataset201_Synapse``."""
    return f"Dataset{dataset_id:03d}_{DATASET_NAME}"


def split_of(case_id: int) -> str:
    """``"train"`` or ``"test"`` for one of the 30 Synapse cases; ValueError for any other id."""
    if case_id in TRAIN_CASES:
        return "train"
    if case_id in TEST_CASES:
        return "test"
    raise ValueError(f"{case_name(case_id)} is not one of the 30 Synapse cases")


def make_splits(present: Iterable[int]) -> list[dict[str, list[str]]]:
    """nnU-Net ``splits_final.json`` content for the cases in ``present``.

    Only fold 0 is written: the TransUNet split (train on the training cases, validate on the
    test cases), restricted to the cases that exist. Folds 1-4 are deliberately absent: the
    benchmark has no cross-validation, and nnU-Net answers a missing fold with a random 80:20
    split of all cases, which mixes test cases into training.
    """
    ids = sorted(set(present))
    return [
        {
            "train": [case_name(i) for i in ids if i in TRAIN_CASES],
            "val": [case_name(i) for i in ids if i in TEST_CASES],
        }
    ]


def missing_cases(present: Iterable[int]) -> tuple[list[int], list[int]]:
    """(missing training ids, missing test ids) relative to the full 30-case Synapse set."""
    have = set(present)
    return [i for i in TRAIN_CASES if i not in have], [i for i in TEST_CASES if i not in have]


def format_case_list(ids: Sequence[int]) -> str:
    """``"case0001, case0002"`` for log and error messages."""
    return ", ".join(case_name(i) for i in ids)
