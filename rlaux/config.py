"""The Hydra config tree: registration of the ``env`` and ``aux`` groups, checks of the
command line before Hydra sees it, and composition for Python callers.

* ``agent``: the presets ``configs/agent/<name>.yaml``, one per registered agent (``agents/``),
  each holding exactly the fields of that agent's config dataclass (:mod:`agents.config`).
* ``env``: any environment name (``dog-run``, ``ALE/Pong-v5``, ``CartPole-v1``) becomes an
  :class:`envs.config.EnvConfig` node, registered on demand for the names the command
  line asks for (there are too many Gymnasium ids to list them all up front).
* ``recipe``: ``recipe=<name>`` applies a paper's settings (:mod:`rlaux.recipes`), after the
  other groups and ``train.yaml``; ``recipe=none`` (the default) applies none.
* ``aux``: one typed dataclass per objective, registered from Python (no folder may be
  called ``aux`` on Windows); several at once with ``aux=[tcrl,predictive]``; ``aux=none``
  selects no objective. Each lands under ``cfg.aux.<name>``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import configs as _configs_pkg
from rlaux.errors import UserError
from rlaux.types import check_unique_objectives

CONFIG_DIR = str(Path(_configs_pkg.__file__).resolve().parent)

# Keys a resumed run may change; every other key must match the checkpoint's config.
RESUMABLE_OVERRIDES = (
    "steps", "device", "logger", "progress", "eval_every", "eval_episodes", "log_every",
    "checkpoint_every", "keep_checkpoints", "save_replay", "max_replay_save_gb", "threads", "on_nan",
    "matmul_precision", "compile", "compile_mode",
)
#: keys left out when a saved config is compared with a resumed or re-run one: what a resume may
#: change, and ``agent.anneal_steps``, which follows ``steps`` (dotted = a key inside a node)
COMPARISON_SKIPS = (*RESUMABLE_OVERRIDES, "resume", "hydra", "agent.anneal_steps")


class ConfigError(UserError, ValueError):
    """A user mistake on the command line or in a config value."""


def is_integer(value: Any) -> bool:
    """An int, or a float with an integer value (YAML ``1e6``); never a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: Any) -> bool:
    """A finite int or float; never a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def invalid_value(key: str, value: Any, rule: str, fix: str = "") -> ConfigError:
    """The one message format of a bad config value: ``<key>=<value> is invalid: must be <rule>[; <fix>]``."""
    return ConfigError(f"{key}={value!r} is invalid: must be {rule}{'; ' + fix if fix else ''}")


def unknown_key(key: str, known: Sequence[str], where: str, prefix: str) -> ConfigError:
    """The error for a config key that does not exist, suggesting close matches among ``known``
    (the valid keys under ``prefix``, e.g. ``agent.``); ``where`` qualifies it (`` (agent=sac)``)."""
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, known, n=3, cutoff=0.7)
    hint = f" Did you mean {' or '.join(prefix + c for c in close)}?" if close else ""
    under = f" under {prefix.rstrip('.')}" if prefix else ""
    return ConfigError(f"Unknown config key {key!r}{where}.{hint} Valid keys{under}: {', '.join(sorted(known))}.")


def slug(text: Any) -> str:
    """A file-name-safe version of ``text`` (``ALE/Pong-v5`` -> ``ALE-Pong-v5``)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", str(text)).strip("-")


def _run_dir(resume: Any, default: str) -> str:
    return str(resume) if resume not in (None, "", "None", "null") else default


def register_resolvers() -> None:
    for name, fn in (("rlaux_slug", slug), ("rlaux_run_dir", _run_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def agent_names() -> list[str]:
    """The registered agents (every module of the ``agents`` package registers its own)."""
    from agents import AGENTS

    return sorted(AGENTS)


def aux_names() -> list[str]:
    from rlaux.objectives import OBJECTIVES

    return sorted(OBJECTIVES)


def _unknown(kind: str, value: str, choices: Sequence[str], extra: str = "") -> ConfigError:
    close = difflib.get_close_matches(value, choices, n=3)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    listing = extra or f"Valid choices: {', '.join(choices)}."
    return ConfigError(f"Unknown {kind}={value!r}.{hint} {listing}")


def _override_values(overrides: Iterable[str], key: str) -> list[str]:
    """Values given to ``key=`` on the command line (sweeps ``a,b`` and lists ``[a,b]`` split)."""
    values: list[str] = []
    for item in overrides:
        item = item.lstrip("+~")
        if not item.startswith(key + "="):
            continue
        raw = item.split("=", 1)[1].strip()
        raw = re.sub(r"^(choice|glob)\((.*)\)$", r"\2", raw)
        values += [v.strip().strip("'\"") for v in re.split(r"[,\[\]]", raw) if v.strip()]
    return values


def check_aux_lists(overrides: Iterable[str]) -> None:
    """Raise :class:`ConfigError` for an ``aux=[...]`` list that names an objective twice
    (the rule and message of the SB3 bridge's ``aux=`` argument)."""
    for item in overrides:
        item = item.lstrip("+~")
        if not item.startswith("aux="):
            continue
        for listed in re.findall(r"\[([^\]]*)\]", item.split("=", 1)[1]):
            names = [v.strip().strip("'\"") for v in listed.split(",") if v.strip()]
            try:
                check_unique_objectives(names)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None


def _recipe_choice(overrides: Sequence[str]) -> tuple[str | None, str]:
    """The recipe named on the command line (one at most; checked) and the env it is for."""
    from rlaux import recipes

    names = [n for n in _override_values(overrides, "recipe") if n not in ("none", "null")]
    env = (_override_values(overrides, "env") or ["CartPole-v1"])[-1]
    for name in names:
        if name not in recipes.recipe_names():
            raise _unknown("recipe", name, ["none", *recipes.recipe_names()])
    if len(set(names)) > 1:
        raise ConfigError(f"recipe= takes one recipe per command ({', '.join(names)} given); run them separately")
    if names:
        import envs

        try:
            recipes.check_env(names[0], env, envs.env_kind(env))
        except envs.UnknownEnvError as exc:
            raise ConfigError(str(exc)) from None
    return (names[0] if names else None), env


def expand_recipe(overrides: Sequence[str]) -> list[str]:
    """``overrides`` with the group choices of the recipe they name put first (``recipe=tcrl``
    -> ``agent=ddpg aux=tcrl``, unless given); a different ``agent=`` is an error."""
    from rlaux import recipes

    overrides = list(overrides)
    name, env = _recipe_choice(overrides)
    if name is None:
        return overrides
    groups = recipes.group_overrides(name, env)
    agents = _override_values(overrides, "agent")
    if any(a != groups["agent"] for a in agents):
        raise ConfigError(f"recipe={name} is a recipe for agent={groups['agent']}; drop agent={','.join(agents)}")
    extra = [f"{g}={v}" for g, v in groups.items() if not _override_values(overrides, g)]
    return extra + overrides


def register_configs(overrides: Sequence[str] = ()) -> None:
    """Register the ``env`` and ``aux`` groups for the names ``overrides`` mention, after
    checking every agent/env/aux name (raising :class:`ConfigError` with the choices) and
    refusing an aux list with a duplicate."""
    import envs
    from envs.config import EnvConfig
    from rlaux.objectives.base import OBJECTIVES

    register_resolvers()
    for name in _override_values(overrides, "agent"):
        if name not in agent_names():
            raise _unknown("agent", name, agent_names())
    aux_choices = aux_names()
    for name in _override_values(overrides, "aux"):
        if name != "none" and name not in aux_choices:
            raise _unknown("aux", name, ["none", *aux_choices])
    check_aux_lists(overrides)
    cs = ConfigStore.instance()
    cs.store(group="aux", name="none", node={}, package="aux")
    for name, cls in OBJECTIVES.items():
        cs.store(group="aux", name=name, node={name: cls.config_class}, package="aux")
    env_names = {"CartPole-v1", *_override_values(overrides, "env")}
    for name in env_names:
        try:
            kind = envs.env_kind(name)
        except envs.UnknownEnvError as exc:
            raise ConfigError(str(exc)) from None
        group, _, option = ("env/" + name).rpartition("/")
        cs.store(group=group, name=option, node=EnvConfig(name=name, kind=kind))
    from rlaux import recipes

    cs.store(group="recipe", name="none", node={"recipe": None}, package="_global_")
    recipe, env = _recipe_choice(overrides)
    if recipe is not None:
        cs.store(group="recipe", name=recipe, node=recipes.node(recipe, env), package="_global_")


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the training config as ``python -m rlaux.train *overrides`` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    overrides = expand_recipe(overrides)
    register_configs(overrides)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides))


def config_hash(cfg: DictConfig) -> str:
    """Hash of everything in ``cfg`` that a resumed run may not change."""
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    for key in COMPARISON_SKIPS:
        *parents, leaf = key.split(".")
        node = data
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
