"""Fixtures' folders built once per test run, also under pytest-xdist, where each worker process has a session of
its own: the first worker to need a folder builds it while holding a file lock, the others wait and reuse it."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock


def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's temporary root, common to all workers (each worker's base folder sits in it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once(tmp_path_factory: pytest.TempPathFactory, name: str, action: Callable[[], None]) -> None:
    """``action()`` in the first worker that gets here; the others wait until it has finished. An action that
    failed leaves no mark of completion, so the next worker runs it again (and fails the same way)."""
    root = run_root(tmp_path_factory)
    done = root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            action()
            done.touch()


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """``run_root / name``, made by ``build(folder)`` on an empty folder, once per run (:func:`once`)."""
    folder = run_root(tmp_path_factory) / name

    def action() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        build(folder)

    once(tmp_path_factory, name, action)
    return folder
