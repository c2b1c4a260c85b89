"""Dataset conversion into nnU-Net v2's raw format: Synapse (BTCV) and a synthetic phantom.

``convert_synapse`` (in :mod:`.converter`) is what ``smaformer convert-synapse`` runs;
:mod:`.synapse` holds the benchmark facts (labels, mapping, split); :mod:`.phantom` writes
synthetic data in either source layout. Submodules import their heavy dependencies lazily.
"""
from nnunetv2_smaformer.conversion.synapse import (
    ALL_CASES,
    BENCHMARK_LABELS,
    BTCV_LABELS,
    BTCV_TO_BENCHMARK,
    TEST_CASES,
    TRAIN_CASES,
    TRANSUNET_DEFAULT_SPACING,
    case_name,
    dataset_folder_name,
    make_splits,
    map_btcv_to_benchmark,
)

__all__ = [
    "ALL_CASES",
    "BENCHMARK_LABELS",
    "BTCV_LABELS",
    "BTCV_TO_BENCHMARK",
    "TEST_CASES",
    "TRAIN_CASES",
    "TRANSUNET_DEFAULT_SPACING",
    "case_name",
    "dataset_folder_name",
    "make_splits",
    "map_btcv_to_benchmark",
]
