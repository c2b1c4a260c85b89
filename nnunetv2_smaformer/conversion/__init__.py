"""Dataset conversion into nnU-Net v2's raw format: Synapse (BTCV) and a synthetic phantom.

* :mod:`.converter` - ``convert_synapse`` (``smaformer convert-synapse``): plan, build, publish.
* :mod:`.sources` - which layout a folder holds; :mod:`.btcv` and :mod:`.transunet` - each layout's
  scan, reading and conversion; :mod:`.cases` - what they share (one folder scan, label checks).
* :mod:`.synapse` - conversion's additions to the benchmark facts of :mod:`nnunetv2_smaformer.synapse`
  (re-exported there and here): label lookup, HU scaling, dataset.json.
* :mod:`.phantom` - synthetic data in either source layout.

Submodules import their heavy dependencies lazily.
"""
from nnunetv2_smaformer.conversion.synapse import (
    ALL_CASES,
    BENCHMARK_LABELS,
    BTCV_LABELS,
    BTCV_TO_BENCHMARK,
    SYNAPSE_SPACING,
    TEST_CASES,
    TRAIN_CASES,
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
    "SYNAPSE_SPACING",
    "case_name",
    "dataset_folder_name",
    "make_splits",
    "map_btcv_to_benchmark",
]
