"""The machine a figure was measured on, for every report: device, cores and threads, processor, torch, nnU-Net and
Python versions. torch is imported when asked."""
from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version


def machine_info(device: str = "cpu") -> dict[str, object]:
    """``device`` (``"cpu"`` or ``"cuda[:N]"``) described: the GPU's name, else ``CPU (N cores)``; torch's threads,
    the processor, the CPU count and the versions of torch, nnunetv2 and Python."""
    import torch

    try:
        nnunet_version = version("nnunetv2")
    except PackageNotFoundError:
        nnunet_version = "unknown"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"CPU ({os.cpu_count()} cores)"
    return {
        "device": name,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "nnunetv2": nnunet_version,
        "python": platform.python_version(),
    }
