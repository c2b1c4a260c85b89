"""The converted Synapse dataset in nnU-Net's raw format, built on the benchmark's facts
(:mod:`nnunetv2_smaformer.synapse`): the BTCV -> benchmark label lookup, undoing TransUNet's intensity scaling, and
the ``dataset.json``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nnunetv2_smaformer.synapse import (
    BENCHMARK_LABELS,
    BTCV_TO_BENCHMARK,
    DATASET_NAME,
    HU_WINDOW,
    MAX_BTCV_LABEL,
)

# Volumes rebuilt from the TransUNet release, which stores no spacing, get SYNAPSE_SPACING: it approximates
# the BTCV medians (in-plane 0.59-0.98 mm, slices 2.5-5 mm), so that nnU-Net plans anisotropic 3D
# configurations sensibly; the 2d configuration is unaffected by a constant spacing because no case gets
# resampled.

#: nnU-Net channel name and file ending of the converted dataset.
CHANNEL_NAME = "CT"
FILE_ENDING = ".nii.gz"


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


def nnunet_labels() -> dict[str, int]:
    """The ``labels`` entry of dataset.json: name -> value, background first, values consecutive."""
    labels = {"background": 0}
    labels.update({name: value for value, name in sorted(BENCHMARK_LABELS.items())})
    return labels


def make_dataset_json(
    num_training: int,
    source_format: str,
    spacing_note: str,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """nnU-Net v2 raw ``dataset.json`` for the converted Synapse dataset."""
    content: dict[str, object] = {
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
