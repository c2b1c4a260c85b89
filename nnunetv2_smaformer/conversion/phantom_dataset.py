"""A phantom as an nnU-Net dataset: :func:`~nnunetv2_smaformer.conversion.phantom.make_phantom` in the BTCV layout,
converted by ``smaformer convert-synapse``'s converter. The demo, the benchmarks and the benchmark scripts start
from it."""
from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from nnunetv2_smaformer.conversion.converter import convert_synapse
from nnunetv2_smaformer.conversion.phantom import make_phantom
from nnunetv2_smaformer.nnunet_env import nnunet_variables, temporary_environ
from nnunetv2_smaformer.synapse import ALL_CASES, dataset_folder_name


def write_phantom_dataset(env: Mapping[str, str], dataset_id: int, work: Path, *, size: int, slices: int, seed: int,
                          cases: Sequence[int] | None = None, spacing: tuple[float, float, float] | None = None,
                          overwrite: bool = False, num_processes: int | None = None) -> tuple[str, Path]:
    """A phantom in the BTCV layout (written to ``work/phantom`` and removed again) converted into the nnU-Net dataset
    ``dataset_id`` of ``env``'s folders.

    Returns ``(dataset folder name, raw dataset folder)``.
    """
    phantom = Path(work) / "phantom"
    if phantom.exists():
        shutil.rmtree(phantom)
    make_phantom(phantom, "btcv", cases=ALL_CASES if cases is None else cases, size=size, slices=slices, seed=seed,
                 spacing=spacing)
    try:
        # The converter reads the nnU-Net folders from the environment, as the CLI does.
        with temporary_environ(nnunet_variables(env, trainers=False), register_trainers=False):
            convert_synapse(phantom, dataset_id, fmt="btcv", overwrite=overwrite, progress=False,
                            num_processes=num_processes)
    finally:
        shutil.rmtree(phantom, ignore_errors=True)  # the converted dataset holds the same voxels
    name = dataset_folder_name(dataset_id)
    return name, Path(env["nnUNet_raw"]) / name
