"""One worker pool with a progress bar, for the per-case work of conversion and evaluation."""
from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")


def run_tasks(
    worker: Callable[[Task], Result],
    tasks: Sequence[Task],
    jobs: int,
    progress: bool,
    desc: str,
    initializer: Callable[[], None] | None = None,
    spawn: bool = False,
) -> list[Result]:
    """``[worker(task) for task in tasks]``, in ``jobs`` processes, with a tqdm bar on stderr.

    ``jobs <= 1`` or a single task runs in this process. The first failure cancels the tasks
    not started yet and is raised; results come back in the order of ``tasks``. ``spawn`` starts
    fresh interpreters instead of forking, for parents that may hold threads (ITK's) that fork
    does not copy safely. ``worker`` and ``initializer`` must be importable module-level functions.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    results: list[Result | None] = [None] * len(tasks)
    bar = tqdm(total=len(tasks), desc=desc, unit="case", file=sys.stderr, disable=not progress)
    with bar, logging_redirect_tqdm():
        if jobs <= 1 or len(tasks) <= 1:
            for index, task in enumerate(tasks):
                results[index] = worker(task)
                bar.update()
            return results  # type: ignore[return-value]
        context = multiprocessing.get_context("spawn") if spawn else None
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context,
                                 initializer=initializer) as pool:
            pending = {pool.submit(worker, task): index for index, task in enumerate(tasks)}
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        results[pending.pop(future)] = future.result()
                        bar.update()
            except BaseException:
                # Do not run the remaining tasks after a failure (or Ctrl-C).
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return results  # type: ignore[return-value]
