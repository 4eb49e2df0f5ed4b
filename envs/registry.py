"""Environment names: which kind ("dmc", "atari", "gym") a name is, and every valid name.

Naming:
    * DeepMind Control: ``domain-task`` with the suite's own spelling (``dog-run``,
      ``finger-turn_hard``, ``ball_in_cup-catch``); aliases ``cup-catch`` / ``pointmass-easy``
      (TD-MPC2 spelling), and all-hyphen spellings (``cartpole-swingup-sparse``,
      ``ball-in-cup-catch``) where unambiguous.
    * Atari: any id registered by ale-py (``ALE/Pong-v5``).
    * rlaux's Gymnasium ids of the DMC tasks (``rlaux/cheetah-run-v0``,
      ``rlaux/cheetah-run-pixels-v0``; :mod:`envs.registration`) are DMC names too.
    * Anything else registered with Gymnasium (``CartPole-v1``), including Gymnasium's
      ``module:EnvId`` form for your own envs: ``my_package.envs:MyEnv-v0`` imports
      ``my_package.envs`` (which registers ``MyEnv-v0``) first.

dm_control, gymnasium and ale_py are imported lazily on first use.
"""

from __future__ import annotations

import difflib
import functools

from envs.registration import ENTRY_POINT, parse_gym_id, registered_ids
from rlaux.errors import UserError

VALID_FORMS = (
    "any DeepMind Control task as domain-task, e.g. dog-run, cheetah-run, finger-turn_hard "
    "(or its Gymnasium id rlaux/cheetah-run-v0, rlaux/cheetah-run-pixels-v0); "
    "Atari as ALE/<Game>-v5, e.g. ALE/Pong-v5; or any Gymnasium id, e.g. CartPole-v1, Pendulum-v1"
)

#: Short domain names used by TD-MPC2 and others.
DMC_DOMAIN_ALIASES = {"ball_in_cup": "cup", "point_mass": "pointmass"}


class UnknownEnvError(UserError, ValueError):
    """Raised for an environment name that is neither a DMC task, an Atari id nor a Gymnasium id."""


@functools.lru_cache(maxsize=1)
def _dmc_tables() -> tuple[dict[str, tuple[str, str]], tuple[str, ...]]:
    """(every accepted DMC spelling -> (domain, task), listed names)."""
    from envs.rendering import import_dm_suite

    suite = import_dm_suite()
    listed: list[str] = []
    candidates: dict[str, set[tuple[str, str]]] = {}
    for domain, task in suite.ALL_TASKS:
        domains = [domain] + ([DMC_DOMAIN_ALIASES[domain]] if domain in DMC_DOMAIN_ALIASES else [])
        listed += [f"{d}-{task}" for d in domains]
        for d in {*domains, domain.replace("_", "-")}:
            for t in {task, task.replace("_", "-")}:
                candidates.setdefault(f"{d}-{t}", set()).add((domain, task))
    canonical = {f"{d}-{t}": (d, t) for d, t in suite.ALL_TASKS}
    table = {name: next(iter(v)) for name, v in candidates.items() if len(v) == 1}
    table.update(canonical)  # a canonical spelling always wins
    return table, tuple(listed)


@functools.lru_cache(maxsize=1)
def _gym_tables() -> tuple[frozenset[str], frozenset[str]]:
    """(ALE ids, other Gymnasium ids); rlaux's own DMC ids are in neither."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    atari, other = set(), set()
    for env_id, spec in gym.registry.items():
        entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
        if entry != ENTRY_POINT:
            (atari if entry.startswith("ale_py") else other).add(env_id)
    return frozenset(atari), frozenset(other)


def parse_dmc_name(name: str) -> tuple[str, str]:
    """``"dog-run"`` -> ``("dog", "run")``; accepts the aliases and ``rlaux/...`` ids above.
    Raises UnknownEnvError."""
    registered = parse_gym_id(name)
    if registered is not None:
        name = registered[0]
    table, _ = _dmc_tables()
    if name not in table:
        raise _unknown(name)
    return table[name]


def list_env_names() -> list[str]:
    """Every valid name: DMC ``domain-task`` (plus cup/pointmass aliases), rlaux's DMC ids,
    ALE ids, Gymnasium ids."""
    _, dmc = _dmc_tables()
    atari, other = _gym_tables()
    return list(dmc) + registered_ids() + sorted(atari) + sorted(other)


def env_kind(name: str) -> str:
    """Return ``"dmc"``, ``"atari"`` or ``"gym"`` for ``name``; UnknownEnvError otherwise."""
    if not isinstance(name, str) or not name:
        raise _unknown(name)
    if ":" in name:
        return _module_env_kind(name)
    if parse_gym_id(name) is not None:
        return "dmc"
    atari, other = _gym_tables()
    if name in atari:
        return "atari"
    if name in other:
        return "gym"
    if "-" in name and name in _dmc_tables()[0]:
        return "dmc"
    raise _unknown(name)


def _module_env_kind(name: str) -> str:
    """Kind of a ``module:EnvId`` name: import ``module`` (it registers ``EnvId``), then look it up."""
    import importlib

    import gymnasium as gym

    module, _, env_id = name.partition(":")
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or an error raised while the module runs
        raise UnknownEnvError(
            f"Unknown environment name {name!r}: cannot import module {module!r} "
            f"({type(exc).__name__}: {exc}). Check that it is on PYTHONPATH.") from None
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f" Did you mean: {', '.join(f'{module}:{c}' for c in close)}?" if close else ""
        raise UnknownEnvError(
            f"Unknown environment name {name!r}: module {module!r} registered no env {env_id!r}.{hint}")
    entry = gym.registry[env_id].entry_point
    return "atari" if isinstance(entry, str) and entry.startswith("ale_py") else "gym"


def _unknown(name: object) -> UnknownEnvError:
    table, listed = _dmc_tables()
    atari, other = _gym_tables()
    pool = sorted(set(listed) | set(table) | set(registered_ids()) | atari | other)
    close = difflib.get_close_matches(str(name), pool, n=5, cutoff=0.6)
    # also compare case-insensitively (e.g. "cartpole-v1" -> "CartPole-v1")
    lower = {p.lower(): p for p in pool}
    for match in difflib.get_close_matches(str(name).lower(), list(lower), n=3, cutoff=0.8):
        if lower[match] not in close:
            close.append(lower[match])
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownEnvError(f"Unknown environment name {name!r}.{hint} Valid names: {VALID_FORMS}.")
