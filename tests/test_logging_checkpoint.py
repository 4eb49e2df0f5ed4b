"""CSV logging and checkpoint files: growth of columns, resume truncation, atomic writes,
truncated-file fallback."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rlaux.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, load_latest_checkpoint, save_checkpoint
from rlaux.logger import CsvLog, Logger


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_csv_header_grows_and_keeps_old_rows(tmp_path: Path) -> None:
    log = CsvLog(tmp_path / "train.csv")
    log.write({"step": 1, "loss": 0.5})
    log.write({"step": 2, "loss": 0.4, "aux/tcrl/loss": 0.1})
    rows = read(tmp_path / "train.csv")
    assert [r["step"] for r in rows] == ["1", "2"]
    assert rows[0]["aux/tcrl/loss"] == "" and rows[1]["aux/tcrl/loss"] == "0.1"


def test_logger_truncates_rows_after_resume_step(tmp_path: Path) -> None:
    logger = Logger(tmp_path, backend="csv", progress=False)
    for step in (100, 200, 300):
        logger.log("train", step, step * 2, {"loss": torch.tensor(float(step))})
    logger.log("eval", 300, 600, {"return": 1.0})
    logger.close()
    resumed = Logger(tmp_path, backend="csv", progress=False, start_step=200)
    resumed.log("train", 300, 600, {"loss": 3.0})
    resumed.close()
    rows = read(tmp_path / "train.csv")
    assert [int(r["step"]) for r in rows] == [100, 200, 300]
    assert [int(r["frame"]) for r in rows] == [200, 400, 600]
    assert read(tmp_path / "eval.csv") == []


def test_logger_rejects_unknown_backend(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="logger='foo'.*wandb, tensorboard, csv, none"):
        Logger(tmp_path, backend="foo")


def test_checkpoints_keep_newest_and_skip_truncated(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, {"agent": {"w": torch.full((100,), float(step))}}, keep=2)
    files = list_checkpoints(tmp_path)
    assert [p.name for p in files] == ["step_0000000020.pt", "step_0000000030.pt"]
    assert not list(tmp_path.glob("*.tmp"))
    # Truncate the newest file: loading it fails clearly, and the latest-loader falls back.
    data = files[-1].read_bytes()
    files[-1].write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(files[-1])
    with pytest.warns(UserWarning, match="falling back"):
        latest = load_latest_checkpoint(tmp_path)
    assert latest is not None and latest["step"] == 20
    assert torch.equal(latest["agent"]["w"], torch.full((100,), 20.0))


def test_non_rlaux_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "step_0000000001.pt"
    torch.save({"hello": 1}, path)
    with pytest.raises(CheckpointError, match="not an rlaux checkpoint"):
        load_checkpoint(path)
