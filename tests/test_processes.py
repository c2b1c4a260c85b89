"""Running commands (``nnunetv2_smaformer.processes``: logged, alone and several at once), the environment they
get and nnU-Net's command lines they run."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.nnunet_commands import predict_command
from nnunetv2_smaformer.nnunet_env import nnunet_variables, with_cpu_worker_defaults
from nnunetv2_smaformer.processes import LoggedRun, run_logged, run_logged_together

# Writes its own flag file, then waits up to 60 s for the other's: it ends only if the other runs at the same time.
RENDEZVOUS = ("import pathlib, sys, time\n"
              "mine, other = map(pathlib.Path, sys.argv[1:3])\n"
              "mine.touch()\n"
              "deadline = time.monotonic() + 60\n"
              "while not other.exists():\n"
              "    if time.monotonic() > deadline:\n"
              "        sys.exit('the other command never ran')\n"
              "    time.sleep(0.05)\n"
              "print('met', mine.name)\n")


def test_run_logged_writes_the_log_and_quotes_a_failure(tmp_path):
    record = run_logged([sys.executable, "-c", "print('hello')"], None, tmp_path / "ok.log", label="ok")
    assert (tmp_path / "ok.log").read_text() == "hello\n" and record.seconds > 0 and record.peak_rss_mib > 0
    with pytest.raises(SMAFormerError, match=r"broken failed \(exit 3\)[\s\S]*last words"):
        run_logged([sys.executable, "-c", "import sys; print('last words'); sys.exit(3)"], None,
                   tmp_path / "bad.log", label="broken")


def test_runs_together_run_at_the_same_time(tmp_path):
    a, b = tmp_path / "a.flag", tmp_path / "b.flag"
    runs = {"first": LoggedRun([sys.executable, "-c", RENDEZVOUS, str(a), str(b)], None, tmp_path / "first.log"),
            "second": LoggedRun([sys.executable, "-c", RENDEZVOUS, str(b), str(a)], None, tmp_path / "second.log")}
    records = run_logged_together(runs, timeout_s=120)
    assert set(records) == {"first", "second"}
    assert (tmp_path / "first.log").read_text() == "met a.flag\n"
    assert (tmp_path / "second.log").read_text() == "met b.flag\n"


def test_runs_together_report_every_failure_after_all_ended(tmp_path):
    done = tmp_path / "done.flag"
    works = f"import time, pathlib; time.sleep(1); pathlib.Path({str(done)!r}).touch()"
    runs = {"fails": LoggedRun([sys.executable, "-c", "import sys; sys.exit('bad input')"], None, tmp_path / "1.log"),
            "hangs": LoggedRun([sys.executable, "-c", "import time; time.sleep(60)"], None, tmp_path / "2.log"),
            "works": LoggedRun([sys.executable, "-c", works], None, tmp_path / "3.log")}
    with pytest.raises(SMAFormerError) as raised:
        run_logged_together(runs, timeout_s=5)
    message = str(raised.value)
    assert "fails failed (exit 1)" in message and "bad input" in message
    assert "hangs took longer than 5 s and was stopped" in message and "works" not in message
    assert done.exists()  # the command that works was not cut short by the others' failures


def test_cpu_worker_defaults_fill_in_what_the_user_left_unset():
    assert with_cpu_worker_defaults({"PATH": "/bin"}) == {"PATH": "/bin", "nnUNet_n_proc_DA": "1"}
    user = {"nnUNet_n_proc_DA": "6"}
    assert with_cpu_worker_defaults(user) == user and user == {"nnUNet_n_proc_DA": "6"}


def test_predict_command_by_name_and_from_a_model_folder():
    by_name = predict_command(Path("in"), Path("out"), dataset_id=7, configuration="2d", trainer="T", device="cuda:1")
    assert by_name == ["nnUNetv2_predict", "-d", "7", "-c", "2d", "-tr", "T", "-i", "in", "-o", "out", "-f", "0",
                       "-chk", "checkpoint_final.pth", "-device", "cuda", "-npp", "1", "-nps", "1"]
    folder = predict_command(Path("in"), Path("out"), model_folder=Path("m"), processes=0, extra=["--disable_tta"])
    assert folder == ["nnUNetv2_predict_from_modelfolder", "-m", "m", "-i", "in", "-o", "out", "-f", "0",
                      "-chk", "checkpoint_final.pth", "-device", "cpu", "-npp", "0", "-nps", "0", "--disable_tta"]
    with pytest.raises(ValueError, match="model folder"):
        predict_command(Path("in"), Path("out"), dataset_id=7)


def test_nnunet_variables_are_the_folders_and_the_trainer_path():
    env = {"PATH": "/bin", "nnUNet_raw": "r", "nnUNet_preprocessed": "p", "nnUNet_results": "s",
           "nnUNet_extTrainer": "t"}
    assert nnunet_variables(env) == {"nnUNet_raw": "r", "nnUNet_preprocessed": "p", "nnUNet_results": "s",
                                     "nnUNet_extTrainer": "t"}
    assert nnunet_variables(env, trainers=False) == {"nnUNet_raw": "r", "nnUNet_preprocessed": "p",
                                                     "nnUNet_results": "s"}
