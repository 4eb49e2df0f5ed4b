"""Run logging: CSV files (always), wandb (offline unless logged in), TensorBoard (optional),
and a tqdm progress bar.

Every row carries both ``step`` (agent steps, summed over vectorised envs) and ``frame``
(env frames = agent steps x action repeat), so action repeat is never ambiguous.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

LOGGER_CHOICES = ("wandb", "tensorboard", "csv", "none")


def to_float(value: Any) -> float:
    """A metric as a Python float (tensors are converted here, once per log row)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean().item())
    return float(value)


class CsvLog:
    """Append-only CSV whose header grows when a new key appears (the file is rewritten once).

    ``truncate_after(step)`` drops rows logged after ``step``: a resumed run calls it so no
    row is duplicated.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fieldnames: list[str] = []
        if self.path.exists():
            with self.path.open(newline="") as f:
                self.fieldnames = list(csv.DictReader(f).fieldnames or [])

    def _read_rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[Mapping[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, row: Mapping[str, Any]) -> None:
        new_keys = [k for k in row if k not in self.fieldnames]
        if new_keys:
            rows = self._read_rows()
            self.fieldnames += new_keys
            self._rewrite(rows)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fieldnames).writerow(row)

    def truncate_after(self, step: int) -> None:
        rows = [r for r in self._read_rows() if int(float(r.get("step", 0) or 0)) <= step]
        if self.fieldnames:
            self._rewrite(rows)


class Logger:
    """Writes ``train.csv`` / ``eval.csv`` in the run folder and mirrors rows to wandb/TensorBoard.

    Args:
        run_dir: the run folder.
        backend: "wandb" (offline unless the user is logged in or WANDB_MODE says otherwise),
            "tensorboard", "csv" (CSV only) or "none" (CSV only, no progress bar).
        config: the resolved config, sent to wandb.
        total_steps: length of the progress bar.
        start_step: the step a resumed run continues from.
        progress: show a tqdm progress bar.
    """

    def __init__(
        self,
        run_dir: Path,
        backend: str = "csv",
        config: Mapping[str, Any] | None = None,
        total_steps: int = 0,
        start_step: int = 0,
        progress: bool = True,
        run_name: str | None = None,
    ) -> None:
        if backend not in LOGGER_CHOICES:
            raise ValueError(f"logger={backend!r} is not a valid choice; valid choices: {', '.join(LOGGER_CHOICES)}")
        self.run_dir = Path(run_dir)
        self.train_csv = CsvLog(self.run_dir / "train.csv")
        self.eval_csv = CsvLog(self.run_dir / "eval.csv")
        if start_step > 0:
            self.train_csv.truncate_after(start_step)
            self.eval_csv.truncate_after(start_step)
        self.backend = backend
        self._wandb_run = None
        self._tb = None
        if backend == "wandb":
            self._wandb_run = self._init_wandb(config or {}, run_name)
        elif backend == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"))
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=not progress, mininterval=1.0)
        self._last_step = start_step
        self.latest_return: float | None = None

    def _init_wandb(self, config: Mapping[str, Any], run_name: str | None) -> Any:
        import wandb

        if "WANDB_MODE" not in os.environ and not _wandb_logged_in():
            os.environ["WANDB_MODE"] = "offline"
        id_file = self.run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else _new_wandb_id()
        id_file.write_text(run_id)
        return wandb.init(
            project=os.environ.get("WANDB_PROJECT", "rlaux"),
            dir=str(self.run_dir),
            id=run_id,
            resume="allow",
            name=run_name,
            config=dict(config),
            settings=wandb.Settings(console="off", silent=True),
        )

    def log(self, kind: str, step: int, frame: int, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Write one row to ``<kind>.csv`` (kind = "train" or "eval") and mirror it."""
        row = {"step": step, "frame": frame}
        row.update({k: to_float(v) for k, v in metrics.items()})
        (self.train_csv if kind == "train" else self.eval_csv).write(row)
        prefixed = {f"{kind}/{k}": v for k, v in row.items() if k not in ("step", "frame")}
        if self._wandb_run is not None:
            self._wandb_run.log({**prefixed, "step": step, "frame": frame}, step=step)
        if self._tb is not None:
            for k, v in prefixed.items():
                if math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
        return row

    def progress(self, step: int, **postfix: float) -> None:
        """Advance the progress bar to ``step`` and show the latest values."""
        self.bar.update(step - self._last_step)
        self._last_step = step
        if postfix:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def message(self, text: str) -> None:
        """Print a line without breaking the progress bar."""
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        if self._wandb_run is not None:
            self._wandb_run.finish()  # Settings(silent=True) keeps it quiet
        if self._tb is not None:
            self._tb.close()


def _new_wandb_id() -> str:
    """A fresh wandb run id (8 lowercase letters/digits, as wandb's own ids), stored in
    ``wandb_id.txt`` for resumes."""
    import secrets
    import string

    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _wandb_logged_in() -> bool:
    """True when an API key is configured (env var or ~/.netrc), without network access."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")
