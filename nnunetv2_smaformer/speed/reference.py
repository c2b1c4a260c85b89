"""The authors' SMAFormerV2, loaded from a file the user gives, as a same-run speed reference.

The authors' ``SMAFormerV2.py`` is not shipped with this package: the user passes the file they
downloaded. It is imported from that path and built the way its training script builds it:
``SMAFormerV2(args, img_size=..., num_classes=..., pretrained_path=None, window_size=...)`` where
``args.dataset`` names the dataset (``'Synapse'`` means 9 classes). It prints a report while being
built; that text is logged at debug level instead of reaching our output.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

from torch import nn

from nnunetv2_smaformer.errors import ReferenceImplementationError
from nnunetv2_smaformer.quiet import quiet

REFERENCE_CLASS = "SMAFormerV2"
# Its deprecation warnings are about its own code, not the user's concern.
_IGNORED_WARNINGS = (DeprecationWarning, FutureWarning)
# Its default window; 256 inputs are then padded to 280 inside the network.
REFERENCE_DEFAULT_WINDOW = 7


def load_reference_module(path: Path) -> ModuleType:
    """Import the Python file ``path`` as a module (not added to ``sys.modules``)."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceImplementationError(f"reference implementation {path}: no such file")
    spec = importlib.util.spec_from_file_location("smaformer_reference", path)
    if spec is None or spec.loader is None:
        raise ReferenceImplementationError(f"reference implementation {path}: not importable as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        with quiet(f"output of {path}", ignore_warnings=_IGNORED_WARNINGS):
            spec.loader.exec_module(module)
    except Exception as err:  # any failure inside foreign code is the file's problem, reported as such
        raise ReferenceImplementationError(f"reference implementation {path}: import failed: "
                                           f"{type(err).__name__}: {err}") from err
    if not isinstance(getattr(module, REFERENCE_CLASS, None), type):
        raise ReferenceImplementationError(f"reference implementation {path}: defines no class {REFERENCE_CLASS}")
    return module


def reference_builder(
    path: Path,
    img_size: int,
    num_classes: int,
    window_size: int = REFERENCE_DEFAULT_WINDOW,
    dataset: str = "Synapse",
) -> Callable[[], nn.Module]:
    """A function that builds the reference network from ``path`` (imported once, here).

    The network takes ``[B, 3, img_size, img_size]`` and returns one ``[B, num_classes, H, W]`` tensor.
    Its constructor's failures (e.g. an unknown ``window_size`` argument) raise :class:`ReferenceImplementationError`.
    """
    cls = getattr(load_reference_module(path), REFERENCE_CLASS)
    args = SimpleNamespace(dataset=dataset)

    def build() -> nn.Module:
        try:
            with quiet(f"output of {path}", ignore_warnings=_IGNORED_WARNINGS):
                model = cls(args, img_size=img_size, num_classes=num_classes, pretrained_path=None,
                            window_size=window_size)
        except Exception as err:
            raise ReferenceImplementationError(f"reference implementation {path}: building {REFERENCE_CLASS}("
                                               f"window_size={window_size}) failed: {type(err).__name__}: "
                                               f"{err}") from err
        if not isinstance(model, nn.Module):
            raise ReferenceImplementationError(f"reference implementation {path}: {REFERENCE_CLASS} is not a "
                                               "torch.nn.Module")
        return model

    return build


def reference_config_name(window_size: int) -> str:
    """``reference`` for the authors' default window, ``reference_window{N}`` for others."""
    return "reference" if window_size == REFERENCE_DEFAULT_WINDOW else f"reference_window{window_size}"

