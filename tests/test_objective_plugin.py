"""Objectives from other installed packages (entry-point group ``rlaux.objectives``): a tiny
plug-in package installed with pip trains through the command line; a broken or wrong entry
point stops with an error naming it."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from rlaux.objectives import base
from rlaux.objectives.base import PLUGIN_GROUP, ObjectivePluginError, ObjectiveRegistry

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_OBJECTIVE = '''
"""Reward prediction from [z_t, a_t]: the smallest useful objective."""

from dataclasses import dataclass

import torch

from rlaux.encoders import mlp
from rlaux.objectives.base import AuxObjective, ObjectiveConfig, register_objective
from rlaux.objectives.common import action_dim, action_features, encode, mask_steps, masked_mean


@dataclass
class PluginRewardConfig(ObjectiveConfig):
    hidden: int = 32


@register_objective
class PluginRewardObjective(AuxObjective):
    name = "plugin_reward"
    config_class = PluginRewardConfig

    def __init__(self, cfg, feature_dim, obs_space, action_space):
        super().__init__(cfg, feature_dim, obs_space, action_space)
        self.obs_ndim = len(obs_space.shape)
        self.head = mlp(feature_dim + action_dim(action_space), [cfg.hidden], 1)

    def loss(self, batch, encoder):
        mask = batch.mask[:, :1]
        action = mask_steps(action_features(batch.action[:, :1], self.action_space), mask)[:, 0]
        z = encode(encoder, batch.obs[:, 0], self.obs_ndim, grad=bool(self.cfg.encoder_grad))
        pred = self.head(torch.cat([z, action], -1)).squeeze(-1)
        return masked_mean((pred - batch.reward[:, 0]) ** 2, mask[:, 0]), {}
'''


def install_package(root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """Install a package ``name`` made of ``modules`` ({module: source}) with pip into
    ``root/site``, offline; return the site folder (for PYTHONPATH)."""
    package = root / name
    (package / name).mkdir(parents=True)
    (package / name / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / name / f"{module}.py").write_text(source)
    points = "\n".join(f'{key} = "{value}"' for key, value in entry_points.items())
    (package / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name.replace("_", "-")}"
        version = "0.0.1"

        [project.entry-points."rlaux.objectives"]
    ''') + points + "\n")
    site = root / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--target", str(site), str(package)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return site


def train_cli(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "WANDB_MODE": "offline",
           "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "rlaux.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_an_installed_plugin_objective_trains_through_the_cli(tmp_path: Path) -> None:
    site = install_package(tmp_path, "rlaux_plugin_demo", {"plugin_reward": "rlaux_plugin_demo.objective"},
                           {"objective": PLUGIN_OBJECTIVE})
    run_dir = tmp_path / "run"
    result = train_cli(site, tmp_path, "agent=sac", "aux=plugin_reward", "aux.plugin_reward.hidden=16",
                       "env=Pendulum-v1", "steps=400", "agent.learning_starts=200", "agent.batch_size=32",
                       "log_every=100", "logger=csv", "progress=false", "threads=1", "eval_episodes=1", "eval_every=0",
                       f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    with (run_dir / "train.csv").open(newline="") as f:
        losses = [float(r["aux/plugin_reward/loss"]) for r in csv.DictReader(f) if r.get("aux/plugin_reward/loss")]
    assert losses and all(math.isfinite(v) for v in losses)


def test_a_broken_installed_plugin_stops_the_cli_with_one_line_naming_it(tmp_path: Path) -> None:
    site = install_package(tmp_path, "rlaux_plugin_broken", {"broken_aux": "rlaux_plugin_broken.objective"},
                           {"objective": "import a_dependency_that_is_not_installed\n"})
    result = train_cli(site, tmp_path, "agent=sac", "env=Pendulum-v1", "aux=tcrl", "steps=64", "logger=none",
                       "progress=false", "threads=1")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and result.stderr.count("rlaux: error:") == 1, result.stderr
    assert "plug-in 'broken_aux'" in result.stderr and "a_dependency_that_is_not_installed" in result.stderr


def registry_with(monkeypatch: pytest.MonkeyPatch, *points: EntryPoint) -> ObjectiveRegistry:
    """A fresh registry whose plug-ins are ``points`` (the module's register_objective writes into it)."""
    registry = ObjectiveRegistry()
    monkeypatch.setattr(base, "OBJECTIVES", registry)
    monkeypatch.setattr(base, "entry_points", lambda group: [p for p in points if p.group == group])
    return registry


def test_a_plugin_that_fails_to_import_is_named_in_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = registry_with(monkeypatch, EntryPoint("broken_aux", "no_such_module_for_rlaux_tests", PLUGIN_GROUP))
    for _ in range(2):  # every lookup says so, not just the first
        with pytest.raises(ObjectivePluginError, match=r"plug-in 'broken_aux' \(entry point "
                                                       r"'no_such_module_for_rlaux_tests'.*ModuleNotFoundError"):
            sorted(registry)


def test_a_plugin_pointing_to_something_else_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = registry_with(monkeypatch, EntryPoint("not_an_objective", "math:pi", PLUGIN_GROUP))
    with pytest.raises(ObjectivePluginError, match=r"'not_an_objective'.*not to a module or an AuxObjective"):
        registry["tcrl"]


def test_a_class_entry_point_is_registered_under_its_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "undecorated_aux_plugin.py").write_text(
        "from rlaux.objectives.base import AuxObjective\n\n\n"
        "class Plain(AuxObjective):\n    name = 'plain_plugin'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = registry_with(monkeypatch, EntryPoint("plain_plugin", "undecorated_aux_plugin:Plain", PLUGIN_GROUP))
    assert registry["plain_plugin"].__name__ == "Plain"
    assert list(registry) == ["plain_plugin"]
    with pytest.raises(KeyError, match="Unknown aux objective 'nope'; valid choices: none, plain_plugin"):
        registry["nope"]


def test_a_name_cannot_be_taken_twice() -> None:
    class Other(base.AuxObjective):
        name = "tcrl"

    with pytest.raises(ValueError, match="'tcrl'.*is taken by rlaux.objectives.tcrl.TCRLObjective"):
        base.register_objective(Other)
