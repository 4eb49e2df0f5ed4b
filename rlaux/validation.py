"""Checks of the command line and the composed config, run before anything is built.

* :func:`check_override_keys`: every ``a.b.c=value`` on the command line names a key that
  exists (misspellings get a suggestion), before Hydra sees it. Hydra's own message for an
  unknown key suggests ``+a.b.c=...``, which would silently add an unused key.
* :func:`validate_config`: types and ranges of the values a run reads, and combinations that
  cannot work (batch larger than the replay, an unknown ``on_nan`` or ``logger``); returns
  warnings for settings that run but are probably not what was meant.

Both raise :class:`rlaux.config.ConfigError` naming the key, the bad value and the fix.
Agents and objectives still check their own options when they are built; this module
catches what is cheap to catch first, before envs are started or a run folder is written.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rlaux.config import CONFIG_DIR, ConfigError, _override_values

#: Top-level keys of ``configs/train.yaml`` that select config groups.
GROUPS = ("agent", "env", "aux")
ON_NAN_CHOICES = ("stop", "skip")
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision

# (key, minimum) for integer run settings.
_RUN_INTS = (("seed", 0), ("steps", 1), ("eval_every", 0), ("eval_episodes", 1), ("log_every", 1),
             ("checkpoint_every", 0), ("keep_checkpoints", 1))
# Agent keys (where an agent has them) that must be integers >= 1, >= 0, or > 0 numbers.
_AGENT_POSITIVE_INTS = ("num_envs", "num_steps", "batch_size", "buffer_size", "update_every", "num_updates",
                        "nstep", "update_epochs", "num_minibatches", "aux.batch_size")
_AGENT_NONNEGATIVE_INTS = ("learning_starts",)
_AGENT_LEARNING_RATES = ("lr", "alpha_lr", "aux.lr")


# --------------------------------------------------------------------------- command line keys
@lru_cache(maxsize=1)
def _train_yaml() -> DictConfig:
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "train.yaml")
    assert isinstance(cfg, DictConfig)
    return cfg


@cache
def _agent_yaml(name: str) -> DictConfig:
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "agent" / f"{name}.yaml")
    assert isinstance(cfg, DictConfig)
    return cfg


def _default_choice(group: str) -> str | None:
    for item in _train_yaml().get("defaults", []):
        if isinstance(item, (dict, DictConfig)) and group in item:
            return str(item[group])
    return None


def _top_level_keys() -> list[str]:
    return sorted([k for k in _train_yaml() if k not in ("defaults", "hydra")] + list(GROUPS))


def _unknown_key(key: str, known: Sequence[str], where: str, prefix: str) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, known, n=3, cutoff=0.7)
    hint = f" Did you mean {' or '.join(prefix + c for c in close)}?" if close else ""
    return ConfigError(f"Unknown config key {key!r}{where}.{hint} Valid keys{' under ' + prefix.rstrip('.') if prefix else ''}: "
                       f"{', '.join(sorted(known))}.")


def _check_path(key: str, node: Any, parts: list[str], prefix: str, where: str) -> None:
    """Walk ``parts`` down a config node, raising for the first segment that does not exist."""
    for part in parts:
        if isinstance(node, (ListConfig, list)) and part.isdigit():
            return  # list index: the value's shape is checked later
        if not isinstance(node, (DictConfig, dict)):
            raise ConfigError(f"Config key {key!r}{where}: {prefix.rstrip('.')} is a value, not a group of keys; "
                              f"set it with {prefix.rstrip('.')}=VALUE")
        if part not in node:
            raise _unknown_key(key, [str(k) for k in node], where, prefix)
        node = node[part]
        prefix += part + "."


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
            raise _unknown_key(key, _top_level_keys(), "", "")
        if not rest:
            continue
        if head == "agent":
            for name in agents:
                _check_path(key, _agent_yaml(name), rest, "agent.", f" (agent={name})")
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
def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def _require(ok: bool, key: str, value: Any, rule: str, fix: str = "") -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: must be {rule}{'; ' + fix if fix else ''}")


def _select(cfg: Any, dotted: str) -> tuple[bool, Any]:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, (DictConfig, dict)) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _check_agent_types(agent: DictConfig) -> None:
    """Each agent value has the type of its default in ``configs/agent/<name>.yaml``."""
    name = str(agent.get("name"))
    path = Path(CONFIG_DIR) / "agent" / f"{name}.yaml"
    if not path.exists():
        return
    defaults = OmegaConf.to_container(_agent_yaml(name), resolve=False)
    values = OmegaConf.to_container(agent, resolve=True)

    def walk(default: Any, value: Any, key: str) -> None:
        if isinstance(default, dict):
            if isinstance(value, dict):
                for k, d in default.items():
                    if k in value:
                        walk(d, value[k], f"{key}.{k}")
            return
        if default is None or (isinstance(default, str) and default.startswith("${")):
            return  # no default type (null) or an interpolation such as ${steps}
        if isinstance(default, bool):
            _require(isinstance(value, bool), key, value, "true or false")
        elif isinstance(default, int):
            _require(_is_int(value), key, value, f"an integer (default {default})")
        elif isinstance(default, float):
            _require(_is_number(value), key, value, f"a finite number (default {default})")
        elif isinstance(default, list):
            _require(isinstance(value, list), key, value, f"a list, e.g. {default}")

    walk(defaults, values, "agent")


def validate_config(cfg: DictConfig) -> list[str]:
    """Check the run's values; raise :class:`ConfigError` for the first bad one.

    Returns warnings (strings) for settings that run but are probably a mistake.
    """
    from rlaux.logger import LOGGER_CHOICES

    for key, minimum in _RUN_INTS:
        value = cfg.get(key)
        _require(_is_int(value) and value >= minimum, key, value, f"an integer >= {minimum}")
    _require(cfg.on_nan in ON_NAN_CHOICES, "on_nan", cfg.on_nan, f"one of {', '.join(ON_NAN_CHOICES)}",
             "stop ends the run at a NaN/Inf loss, skip drops that update and counts it")
    _require(cfg.logger in LOGGER_CHOICES, "logger", cfg.logger, f"one of {', '.join(LOGGER_CHOICES)}")
    for key in ("save_replay", "progress"):
        _require(isinstance(cfg.get(key), bool), key, cfg.get(key), "true or false")
    _require(_is_number(cfg.max_replay_save_gb) and cfg.max_replay_save_gb >= 0, "max_replay_save_gb",
             cfg.max_replay_save_gb, "a number >= 0")
    _require(cfg.threads is None or (_is_int(cfg.threads) and cfg.threads >= 1), "threads", cfg.threads,
             "null (torch's default) or an integer >= 1")
    _require(isinstance(cfg.device, str), "device", cfg.device, "auto, cpu, cuda or cuda:N")
    _require(cfg.matmul_precision in MATMUL_PRECISIONS, "matmul_precision", cfg.matmul_precision,
             f"one of {', '.join(MATMUL_PRECISIONS)}",
             "highest keeps IEEE fp32 matmuls; medium trades a little precision for speed (see README)")

    agent = cfg.agent
    _check_agent_types(agent)
    for key in _AGENT_POSITIVE_INTS:
        found, value = _select(agent, key)
        if found:
            _require(_is_int(value) and value >= 1, f"agent.{key}", value, "an integer >= 1")
    for key in _AGENT_NONNEGATIVE_INTS:
        found, value = _select(agent, key)
        if found:
            _require(_is_int(value) and value >= 0, f"agent.{key}", value, "an integer >= 0")
    for key in _AGENT_LEARNING_RATES:
        found, value = _select(agent, key)
        if found:
            _require(_is_number(value) and value > 0, f"agent.{key}", value, "a learning rate > 0")

    warnings: list[str] = []
    num_envs = int(cfg.env.num_envs if cfg.env.get("num_envs") is not None else agent.get("num_envs", 1))
    if "buffer_size" in agent and "batch_size" in agent:
        if agent.batch_size > agent.buffer_size:
            raise ConfigError(f"agent.batch_size={agent.batch_size} is larger than the replay buffer "
                              f"(agent.buffer_size={agent.buffer_size}); lower agent.batch_size or raise agent.buffer_size")
        if "learning_starts" in agent and agent.learning_starts >= cfg.steps:
            warnings.append(f"agent.learning_starts={agent.learning_starts} >= steps={cfg.steps}: the agent acts "
                            "randomly and never updates; lower agent.learning_starts or raise steps")
    if "num_minibatches" in agent and "num_steps" in agent:
        rollout = int(agent.num_steps) * num_envs
        if agent.num_minibatches > rollout:
            raise ConfigError(f"agent.num_minibatches={agent.num_minibatches} is larger than the rollout "
                              f"(agent.num_steps x num_envs = {agent.num_steps} x {num_envs} = {rollout} transitions); "
                              "lower agent.num_minibatches or raise agent.num_steps")
    return warnings
