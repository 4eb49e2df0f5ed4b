"""Checks of the command line and the composed config, run before anything is built.

* :func:`check_override_keys`: every ``a.b.c=value`` on the command line names a key that
  exists (misspellings get a suggestion), before Hydra sees it. Hydra's own message for an
  unknown key suggests ``+a.b.c=...``, which would silently add an unused key.
* :func:`validate_config`: types and ranges of the values a run reads, and combinations that
  cannot work (batch larger than the replay, an unknown ``on_nan`` or ``logger``); returns
  warnings for settings that run but are probably not what was meant.

Both raise :class:`rlaux.config.ConfigError` naming the key, the bad value and the fix.
The ``agent`` node is checked by the agent's own config dataclass
(:class:`agents.config.AgentConfig`: its fields are the valid keys, its rules the valid
values), the same check the agent runs when it is built; objectives check their options in
their config's ``__post_init__``. This module runs them first, before envs are started or a
run folder is written, and keeps the run-level keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from agents import agent_class
from agents.config import config_keys
from rlaux.compile import COMPILE_MODES
from rlaux.config import CONFIG_DIR, ConfigError, _override_values, invalid_value, is_integer, is_number, unknown_key

#: Top-level keys of ``configs/train.yaml`` that select config groups.
GROUPS = ("agent", "env", "aux", "recipe")
ON_NAN_CHOICES = ("stop", "skip")
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision

# (key, minimum) for integer run settings.
_RUN_INTS = (("seed", 0), ("steps", 1), ("eval_every", 0), ("eval_episodes", 1), ("log_every", 1),
             ("checkpoint_every", 0), ("keep_checkpoints", 1))


# --------------------------------------------------------------------------- command line keys
@lru_cache(maxsize=1)
def _train_yaml() -> DictConfig:
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "train.yaml")
    assert isinstance(cfg, DictConfig)
    return cfg


def _default_choice(group: str) -> str | None:
    for item in _train_yaml().get("defaults", []):
        if isinstance(item, (dict, DictConfig)) and group in item:
            return str(item[group])
    return None


def _top_level_keys() -> list[str]:
    return sorted([k for k in _train_yaml() if k not in ("defaults", "hydra")] + list(GROUPS))


def _check_path(key: str, node: Any, parts: list[str], prefix: str, where: str) -> None:
    """Walk ``parts`` down a config node, raising for the first segment that does not exist."""
    for part in parts:
        if isinstance(node, (ListConfig, list)) and part.isdigit():
            return  # list index: the value's shape is checked later
        if not isinstance(node, (DictConfig, dict)):
            raise ConfigError(f"Config key {key!r}{where}: {prefix.rstrip('.')} is a value, not a group of keys; "
                              f"set it with {prefix.rstrip('.')}=VALUE")
        if part not in node:
            raise unknown_key(key, [str(k) for k in node], where, prefix)
        node = node[part]
        prefix += part + "."


def _check_agent_key(key: str, agent: str, parts: list[str]) -> None:
    """``agent.<parts>`` must be a field of ``agent``'s config dataclass (a renamed key gets its new name)."""
    config_class = agent_class(agent).config_class
    renamed = config_class.renamed_keys.get(parts[0])
    if renamed is not None:
        raise ConfigError(f"Config key {key!r} is renamed agent.{renamed} (the old name still loads from a saved "
                          f"config.yaml, with a warning); use agent.{'.'.join([renamed, *parts[1:]])}=...")
    _check_path(key, config_keys(config_class), parts, "agent.", f" (agent={agent})")


def check_override_keys(overrides: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for a ``key=value`` override whose key does not exist.

    ``+key=`` (add), ``++key=`` (force add), ``~key`` (delete), ``hydra.*`` keys and group
    paths (``hydra/launcher=ray``) are left to Hydra. Agent keys must exist in every agent the
    command line selects (a sweep ``agent=sac,ppo agent.tau=0.01`` fails for ppo);
    ``aux.<name>.*`` keys need ``aux=<name>`` on the command line.
    """
    from envs.config import EnvConfig
    from rlaux.objectives import OBJECTIVES

    items = [a for a in overrides if "=" in a and not a.startswith(("-", "+", "~"))]
    agents = _override_values(overrides, "agent") or [_default_choice("agent") or "ppo"]
    auxes = [a for a in _override_values(overrides, "aux") if a != "none"]
    for item in items:
        key = item.split("=", 1)[0].strip()
        if "@" in key or "/" in key or key == "hydra" or key.startswith("hydra."):
            continue  # package overrides and config-group paths (hydra/launcher=ray) are Hydra's
        head, *rest = key.split(".")
        if head not in _top_level_keys():
            raise unknown_key(key, _top_level_keys(), "", "")
        if not rest:
            continue
        if head == "agent":
            for name in agents:
                _check_agent_key(key, name, rest)
        elif head == "env":
            fields = {f.name: None for f in dataclasses.fields(EnvConfig)}
            _check_path(key, fields, rest, "env.", "")
        elif head == "aux":
            name = rest[0]
            if name not in auxes:
                known = ", ".join(auxes) if auxes else "none"
                hint = f"add aux={name}" if name in OBJECTIVES else f"valid objectives: {', '.join(sorted(OBJECTIVES))}"
                raise ConfigError(f"Config key {key!r} sets an option of objective {name!r}, which is not selected "
                                  f"(aux: {known}); {hint}.")
            fields = {f.name: None for f in dataclasses.fields(OBJECTIVES[name].config_class)}
            _check_path(key, fields, rest[1:], f"aux.{name}.", "")
        else:
            _check_path(key, {k: v for k, v in _train_yaml().items() if k not in ("defaults",)}, [head, *rest], "", "")


# --------------------------------------------------------------------------- values
def _require(ok: bool, key: str, value: Any, rule: str, fix: str = "") -> None:
    if not ok:
        raise invalid_value(key, value, rule, fix)


def validate_config(cfg: DictConfig) -> list[str]:
    """Check the run's values; raise :class:`ConfigError` for the first bad one.

    Returns warnings (strings) for settings that run but are probably a mistake.
    """
    from rlaux.logger import LOGGER_CHOICES

    for key, minimum in _RUN_INTS:
        value = cfg.get(key)
        _require(is_integer(value) and value >= minimum, key, value, f"an integer >= {minimum}")
    _require(cfg.on_nan in ON_NAN_CHOICES, "on_nan", cfg.on_nan, f"one of {', '.join(ON_NAN_CHOICES)}",
             "stop ends the run at a NaN/Inf loss, skip drops that update and counts it")
    _require(cfg.logger in LOGGER_CHOICES, "logger", cfg.logger, f"one of {', '.join(LOGGER_CHOICES)}")
    for key in ("save_replay", "progress"):
        _require(isinstance(cfg.get(key), bool), key, cfg.get(key), "true or false")
    _require(is_number(cfg.max_replay_save_gb) and cfg.max_replay_save_gb >= 0, "max_replay_save_gb",
             cfg.max_replay_save_gb, "a number >= 0")
    _require(cfg.threads in (None, "auto") or (is_integer(cfg.threads) and cfg.threads >= 1), "threads", cfg.threads,
             "auto (a share of the given cores, rlaux/threads.py), null (torch's default) or an integer >= 1")
    _require(isinstance(cfg.device, str), "device", cfg.device, "auto, cpu, cuda or cuda:N")
    _require(cfg.matmul_precision in MATMUL_PRECISIONS, "matmul_precision", cfg.matmul_precision,
             f"one of {', '.join(MATMUL_PRECISIONS)}",
             "highest keeps IEEE fp32 matmuls; medium trades a little precision for speed (see README)")
    _require(isinstance(cfg.get("compile", False), bool), "compile", cfg.get("compile"), "true or false")
    _require(cfg.get("compile_mode", "auto") in COMPILE_MODES, "compile_mode", cfg.get("compile_mode"),
             f"one of {', '.join(COMPILE_MODES)}", "auto gives CUDA graphs (reduce-overhead) on CUDA, default on CPU")

    recipe = cfg.get("recipe")
    if recipe and str(recipe).startswith(("drqv2", "taco")) and cfg.env.get("obs") != "pixels":
        raise ConfigError(f"recipe={recipe} is a pixel recipe; env.obs={cfg.env.get('obs')} cannot serve it "
                          "(drop env.obs, or use recipe=tcrl for state tasks)")
    agent = agent_class(str(cfg.agent.name)).config_class.from_config(cfg.agent)
    num_envs = int(cfg.env.num_envs if cfg.env.get("num_envs") is not None else agent.num_envs)
    return agent.check_run(int(cfg.steps), num_envs)
