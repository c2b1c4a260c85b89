"""Keeping a library's prints off the command's own output: nnU-Net and the authors' reference code report with
``print()``; what they print is logged at debug level instead (``smaformer -v`` shows it)."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet(what: str, ignore_warnings: tuple[type[Warning], ...] = ()) -> Iterator[None]:
    """Within the block, stdout goes to a buffer that is logged at debug level under ``what`` afterwards; warnings of
    the ``ignore_warnings`` categories are dropped."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
            if ignore_warnings:
                warnings.simplefilter("ignore", ignore_warnings)
            yield
    finally:
        if buffer.getvalue().strip():
            logger.debug("%s:\n%s", what, buffer.getvalue().rstrip())
