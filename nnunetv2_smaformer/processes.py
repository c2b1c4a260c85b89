"""Running commands and measuring workers: the one copy of each run helper that the demo, the benchmarks, the
benchmark scripts and the tests use.

* :func:`console_script` finds ``nnUNetv2_*`` (and ``smaformer``) of this interpreter's environment;
* :func:`run_logged` runs a command with its whole output in a log file, in a process group of its own (stopped
  with all its children on a timeout or an interruption), and returns its wall time and the peak resident memory
  of its largest process (:class:`RunRecord`); :func:`run_logged_together` runs several at once (the test suite and
  ``benchmarks/parallel_trainings.py``); :class:`Stages` times named stages;
* :func:`run_worker` / :func:`worker_main`: the worker-process protocol (``python -m MODULE SPEC.json
  RESULT.json``) that measures one thing in a fresh process, and :func:`peak_rss_mib` of such a process.

Standard library only.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunetv2_smaformer.errors import SMAFormerError

logger = logging.getLogger(__name__)

#: Lines of a failed command's log quoted in the error.
_TAIL_LINES = 10


def console_script(name: str) -> str:
    """A console script (``nnUNetv2_train``, ...) of this interpreter's environment, else from ``PATH``."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.is_file() else shutil.which(name)
    if not found:
        raise SMAFormerError(f"console script {name} not found next to {sys.executable} nor on PATH")
    return found


def console_command(cmd: Sequence[object]) -> list[str]:
    """``cmd`` with its first item, a console script's name, found by :func:`console_script`; every item a string."""
    return [console_script(str(cmd[0])), *map(str, cmd[1:])]


def stop_process_group(process: subprocess.Popen) -> None:
    """Kill ``process`` and every process of its session (it was started with ``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@dataclass(frozen=True)
class RunRecord:
    """A finished command: wall seconds and the peak resident set size of its largest process in MiB."""

    seconds: float
    peak_rss_mib: float


def _command_line(cmd: Sequence[str]) -> str:
    return " ".join([Path(cmd[0]).name, *map(str, cmd[1:])])


def run_logged(cmd: Sequence[str], env: Mapping[str, str] | None, log_file: Path, *, label: str | None = None,
               show: Sequence[str] = (), timeout_s: float | None = None,
               on_start: Callable[[subprocess.Popen], None] | None = None) -> RunRecord:
    """Run ``cmd`` with its stdout and stderr in ``log_file``; the lines containing one of ``show`` are logged too.

    The command runs in a session of its own, so that on a timeout (or an interruption of this process) it is
    stopped with all its children (nnU-Net's data-loader and export workers): :func:`stop_process_group`.
    ``on_start`` is handed the process once it runs.

    Raises:
        SMAFormerError: a non-zero exit (the log's last lines quoted) or ``timeout_s`` exceeded.
    """
    label = label or Path(cmd[0]).name
    logger.info("[%s] %s", label, _command_line(cmd))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    timed_out = threading.Event()
    start = time.perf_counter()
    with open(log_file, "w") as log:
        process = subprocess.Popen([str(c) for c in cmd], env=None if env is None else dict(env),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                   start_new_session=True)

        if on_start is not None:
            on_start(process)

        def stop() -> None:
            timed_out.set()
            stop_process_group(process)

        timer = threading.Timer(timeout_s, stop) if timeout_s else None
        try:
            if timer is not None:
                timer.start()
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                if any(marker in line for marker in show):
                    logger.info("[%s] %s", label, line.strip()[:160])
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            stop()
            process.wait()
            raise
        finally:
            if timer is not None:
                timer.cancel()
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if timed_out.is_set():
        raise SMAFormerError(f"{label} took longer than {timeout_s:.0f} s and was stopped; see {log_file}")
    if process.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").strip().splitlines()[-_TAIL_LINES:])
        raise SMAFormerError(f"{label} failed (exit {process.returncode}); see {log_file}:\n{tail}")
    # ru_maxrss: KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return RunRecord(seconds, usage.ru_maxrss * scale / 2**20)


@dataclass(frozen=True)
class LoggedRun:
    """One command for :func:`run_logged_together`: as :func:`run_logged` takes it."""

    cmd: Sequence[str]
    env: Mapping[str, str] | None
    log_file: Path


def run_logged_together(runs: Mapping[str, LoggedRun], timeout_s: float | None = None) -> dict[str, RunRecord]:
    """:func:`run_logged` of every ``runs`` value (the key is its label), all started at once, one thread each;
    returns their records by label once all have ended.

    Raises:
        SMAFormerError: one or more failed or ran past ``timeout_s``; the message holds every failure.
    """
    records: dict[str, RunRecord] = {}
    failures: dict[str, BaseException] = {}
    processes: list[subprocess.Popen] = []

    def run(label: str, job: LoggedRun) -> None:
        try:
            records[label] = run_logged(job.cmd, job.env, job.log_file, label=label, timeout_s=timeout_s,
                                        on_start=processes.append)
        except BaseException as error:  # noqa: BLE001  (reported in the calling thread)
            failures[label] = error

    threads = [threading.Thread(target=run, args=item, name=item[0]) for item in runs.items()]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:
        # An interruption reaches this thread only: stop the commands, which then end their threads.
        for process in processes:
            stop_process_group(process)
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join()
        raise
    if failures:
        errors = [error for error in failures.values() if not isinstance(error, SMAFormerError)]
        if errors:  # not a command's failure (an interruption, a bug): as it was raised
            raise errors[0]
        raise SMAFormerError("\n".join(str(error) for error in failures.values()))
    return records


@dataclass
class Stages:
    """Wall time of named stages: ``with stages("train"): ...``; ``seconds`` keeps them in order."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        logger.info("[%s] done in %.0f s", name, self.seconds[name])


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB.

    Linux: ``VmHWM`` of /proc/self/status, which starts afresh at ``exec``. ``getrusage``'s ``ru_maxrss``
    would not: Linux carries the parent's high-water mark over fork and exec into the child.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def run_worker(module: str, spec: dict, workdir: Path, *, name: str, env: Mapping[str, str] | None = None,
               timeout_s: float | None = None, log_file: Path | None = None) -> dict:
    """Run ``python -m MODULE SPEC.json RESULT.json`` (a module whose main is :func:`worker_main`) in a fresh
    process and return the JSON record it wrote. Its output goes to ``log_file`` (default ``workdir/NAME.log``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = workdir / f"{name}.spec.json", workdir / f"{name}.result.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    run_logged([sys.executable, "-m", module, str(spec_path), str(result_path)], env,
               log_file or workdir / f"{name}.log", label=f"{name} (worker)", timeout_s=timeout_s)
    if not result_path.is_file():
        raise SMAFormerError(f"worker {module} for {name} wrote no result")
    return json.loads(result_path.read_text(encoding="utf-8"))


def worker_main(argv: Sequence[str], measure: Callable[[dict], dict], module: str) -> int:
    """The worker side of :func:`run_worker`: ``measure(spec)`` written as JSON. Returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if len(argv) != 2:
        logger.error("usage: python -m %s SPEC.json RESULT.json", module)
        return 2
    record = measure(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    Path(argv[1]).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0

