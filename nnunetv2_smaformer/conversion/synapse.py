"""Facts about the Synapse (BTCV multi-organ CT) benchmark: labels, mapping, split, constants.

Everything here follows SPEC section 5. Case identifiers are the BTCV numbers (1-10, 21-40);
nnU-Net case names are ``caseNNNN`` with the same number, which is also how TransUNet names them.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

#: The 13 organs of the BTCV raw release, by their label value there.
BTCV_LABELS: Dict[int, str] = {
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
BENCHMARK_LABELS: Dict[int, str] = {
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
BTCV_TO_BENCHMARK: Dict[int, int] = {8: 1, 4: 2, 3: 3, 2: 4, 6: 5, 11: 6, 1: 7, 7: 8}

#: Largest label value of each source release (0 is background in both).
MAX_BTCV_LABEL = 13
MAX_BENCHMARK_LABEL = 8

#: TransUNet split (SPEC section 5): 12 test and 18 training cases, by BTCV number.
TEST_CASES: Tuple[int, ...] = (1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38)
TRAIN_CASES: Tuple[int, ...] = (5, 6, 7, 9, 10, 21, 23, 24, 26, 27, 28, 30, 31, 33, 34, 37, 39, 40)
#: All 30 labelled BTCV training CTs (1-10, 21-40), sorted.
ALL_CASES: Tuple[int, ...] = tuple(sorted(TEST_CASES + TRAIN_CASES))

#: TransUNet clipped CT intensities to this HU window and scaled it to [0, 1].
HU_WINDOW: Tuple[float, float] = (-125.0, 275.0)

#: Voxel spacing (x, y, z) in mm given to volumes rebuilt from the TransUNet release, which stores
#: none. It approximates the BTCV medians (in-plane 0.59-0.98 mm, slices 2.5-5 mm), so that
#: nnU-Net plans anisotropic 3D configurations sensibly; the 2d configuration is unaffected by a
#: constant spacing because no case gets resampled.
TRANSUNET_DEFAULT_SPACING: Tuple[float, float, float] = (0.76, 0.76, 3.0)

#: nnU-Net dataset name suffix and channel name.
DATASET_NAME = "Synapse"
CHANNEL_NAME = "CT"
FILE_ENDING = ".nii.gz"


def case_name(case_id: int) -> str:
    """nnU-Net/TransUNet case identifier of BTCV case ``case_id``, e.g. ``3 -> "case0003"``."""
    return f"case{case_id:04d}"


def dataset_folder_name(dataset_id: int) -> str:
    """nnU-Net dataset folder name, e.g. ``Dataset201_Synapse``."""
    return f"Dataset{dataset_id:03d}_{DATASET_NAME}"


def btcv_to_benchmark_lut() -> np.ndarray:
    """Lookup table of shape (14,), uint8: ``lut[btcv_label]`` is the benchmark label."""
    lut = np.zeros(MAX_BTCV_LABEL + 1, dtype=np.uint8)
    for src, dst in BTCV_TO_BENCHMARK.items():
        lut[src] = dst
    return lut


def map_btcv_to_benchmark(label: np.ndarray) -> np.ndarray:
    """Map an integer BTCV label array (any shape, values 0-13) to benchmark labels (uint8, 0-8)."""
    return btcv_to_benchmark_lut()[label]


def transunet_to_hu(values: np.ndarray) -> np.ndarray:
    """Undo TransUNet's intensity scaling: ``HU = 400 * v - 125`` (float32, same shape)."""
    low, high = HU_WINDOW
    return (np.asarray(values, dtype=np.float32) * np.float32(high - low) + np.float32(low)).astype(np.float32)


def hu_to_transunet(hu: np.ndarray) -> np.ndarray:
    """TransUNet's intensity scaling: clip to [-125, 275] HU, map to [0, 1] (float32, same shape)."""
    low, high = HU_WINDOW
    clipped = np.clip(np.asarray(hu, dtype=np.float32), low, high)
    return ((clipped - np.float32(low)) / np.float32(high - low)).astype(np.float32)


def nnunet_labels() -> Dict[str, int]:
    """The ``labels`` entry of dataset.json: name -> value, background first, values consecutive."""
    labels = {"background": 0}
    labels.update({name: value for value, name in sorted(BENCHMARK_LABELS.items())})
    return labels


def split_of(case_id: int) -> str:
    """``"train"`` or ``"test"`` for one of the 30 Synapse cases; ValueError for any other id."""
    if case_id in TRAIN_CASES:
        return "train"
    if case_id in TEST_CASES:
        return "test"
    raise ValueError(f"{case_name(case_id)} is not one of the 30 Synapse cases")


def make_splits(present: Iterable[int]) -> List[Dict[str, List[str]]]:
    """nnU-Net ``splits_final.json`` content for the cases in ``present``.

    Only fold 0 is written: the TransUNet split (train on the training cases, validate on the
    test cases), restricted to the cases that exist. Folds 1-4 are deliberately absent; see
    docs/conversion.md for why (nnU-Net's fallback split would mix test cases into training).
    """
    ids = sorted(set(present))
    return [
        {
            "train": [case_name(i) for i in ids if i in TRAIN_CASES],
            "val": [case_name(i) for i in ids if i in TEST_CASES],
        }
    ]


def missing_cases(present: Iterable[int]) -> Tuple[List[int], List[int]]:
    """(missing training ids, missing test ids) relative to the full 30-case Synapse set."""
    have = set(present)
    return [i for i in TRAIN_CASES if i not in have], [i for i in TEST_CASES if i not in have]


def make_dataset_json(
    num_training: int,
    source_format: str,
    spacing_note: str,
    extra: Mapping[str, object] | None = None,
) -> Dict[str, object]:
    """nnU-Net v2 raw ``dataset.json`` for the converted Synapse dataset."""
    content: Dict[str, object] = {
        "channel_names": {"0": CHANNEL_NAME},
        "labels": nnunet_labels(),
        "numTraining": int(num_training),
        "file_ending": FILE_ENDING,
        "name": DATASET_NAME,
        "description": (
            "Synapse multi-organ CT (MICCAI 2015 Multi-Atlas Abdomen Labeling, BTCV), 8 organs of the "
            "TransUNet benchmark protocol. splits_final.json fold 0 is the TransUNet 18/12 split; "
            "imagesTs/labelsTs link the 12 test cases."
        ),
        "reference": "https://www.synapse.org/#!Synapse:syn3193805/wiki/217789",
        "licence": "see the Synapse BTCV challenge terms of use",
        "release": "converted by nnunetv2_smaformer",
        "converted_from": source_format,
        "spacing": spacing_note,
    }
    if extra:
        content.update(extra)
    return content


def format_case_list(ids: Sequence[int]) -> str:
    """``"case0001, case0002"`` for log and error messages."""
    return ", ".join(case_name(i) for i in ids)
