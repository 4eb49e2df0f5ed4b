"""CSV logging and checkpoint files: growth of columns, resume truncation, atomic writes,
truncated-file fallback, old and unknown checkpoint formats, config comparison."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rlaux.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
)
from rlaux.errors import UserError
from rlaux.logger import CsvLog, Logger
from rlaux.run_files import config_differences


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


def test_format_1_checkpoint_is_read_with_its_replay_in_the_loop_state(tmp_path: Path) -> None:
    path = tmp_path / "step_0000000005.pt"
    replay = {"pos": 3, "storage": {"obs": torch.ones(2, 3)}}
    torch.save({"format": 1, "step": 5, "agent": {}, "loop": {"obs": None, "replay_capacity": 8}, "replay": replay}, path)
    data = load_checkpoint(path)
    assert data["format"] == CHECKPOINT_FORMAT == 2
    assert "replay" not in data and data["loop"]["replay_capacity"] == 8
    assert data["loop"]["replay"]["pos"] == 3 and torch.equal(data["loop"]["replay"]["storage"]["obs"], torch.ones(2, 3))


def test_checkpoint_of_an_unknown_format_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "step_0000000001.pt"
    torch.save({"format": 99, "step": 1, "agent": {}}, path)
    with pytest.raises(CheckpointError, match="has format 99, which this rlaux cannot read") as info:
        load_checkpoint(path)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


def test_config_differences_skip_resumable_keys_and_what_is_under_them() -> None:
    saved = {"seed": 1, "steps": 100, "steps_extra": 1, "hydra": {"run": {"dir": "a"}},
             "agent": {"lr": 0.1, "anneal_steps": 100}}
    current = {"seed": 2, "steps": 200, "steps_extra": 2, "hydra": {"run": {"dir": "b"}},
               "agent": {"lr": 0.2, "anneal_steps": 200}}
    assert config_differences(saved, current) == ["agent.lr: 0.1 -> 0.2", "seed: 1 -> 2", "steps_extra: 1 -> 2"]
    assert config_differences(saved, current, limit=1) == ["agent.lr: 0.1 -> 0.2"]
    assert config_differences(saved, saved) == []
