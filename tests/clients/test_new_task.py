"""`bdfl new-task NAME` writes a working task module and its test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bdfl.cli import main
from bdfl.config import load_config
from bdfl.experiment.runner import run_experiment

ROOT = Path(__file__).resolve().parents[2]


def test_new_task_writes_a_task_whose_test_passes_and_that_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-task", "my_task", "--dir", str(tmp_path)]) == 0
    assert "run it:   bdfl run --set task.client=" in capsys.readouterr().out
    task, test = tmp_path / "my_task.py", tmp_path / "test_my_task.py"
    assert task.is_file() and test.is_file()
    # its own test passes (run as a user would, from its folder)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "4 passed" in proc.stdout, proc.stdout + proc.stderr
    # and it runs: 2 rounds, 4 peers on a devnet
    cfg = load_config(None, {"peers": 4, "rounds": 2, "workers": 1, "attack.fraction": 0.0, "task.client": str(task),
                             "protocol.committee_size": 4, "protocol.auditors_per_update": 3, "protocol.quorum": 2,
                             "overlay.degree": 3, "task.local_epochs": 2})
    out = run_experiment(cfg, quiet=True, out=tmp_path / "run")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 2


def test_new_task_refuses_bad_names_and_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-task", "my-task", "--dir", str(tmp_path)]) == 1
    assert "not usable as a Python module name" in capsys.readouterr().err
    assert main(["new-task", "t1", "--dir", str(tmp_path)]) == 0
    assert main(["new-task", "t1", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--force" in err and "test_t1.py already exist\n" in err
    (tmp_path / "test_t1.py").unlink()  # one file left: singular ("already exist(s)" before)
    assert main(["new-task", "t1", "--dir", str(tmp_path)]) == 1
    assert "t1.py already exists" in capsys.readouterr().err
    assert main(["new-task", "t1", "--dir", str(tmp_path), "--force"]) == 0
    # a name that would hide an installed module (pytest puts the folder first on sys.path: torch.py's
    # `import torch` imported itself, and every task test in that folder failed; an outside probe)
    for name in ("torch", "flwr", "os", "json"):
        assert main(["new-task", name, "--dir", str(tmp_path)]) == 1
        assert "name of an installed module" in capsys.readouterr().err
        assert not (tmp_path / f"{name}.py").exists()


def test_the_generated_test_fits_a_small_data_set(tmp_path: Path) -> None:
    """The test's slices were digits-sized (300 + 100 samples): a 124-sample data set got an empty
    validation slice and an unexplained assertion (an outside probe, load_wine)."""
    assert main(["new-task", "small_task", "--dir", str(tmp_path)]) == 0
    task = tmp_path / "small_task.py"
    text = task.read_text()
    body = "    return load_digits()\n"
    assert body in text
    small = ("    import dataclasses\n    d = load_digits()\n"
             "    return dataclasses.replace(d, X_train=d.X_train[:124], y_train=d.y_train[:124])\n")
    task.write_text(text.replace(body, small))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_small_task.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "4 passed" in proc.stdout, proc.stdout + proc.stderr
