"""Score normalisation and named benchmark suites.

Normalisation (what papers report):

* Atari: human-normalised score ``HNS = (score - random) / (human - random)`` with the pinned
  57-game random/human table ``rlaux/data/atari_human_random.csv`` (source and caveats in that
  file's header: DeepMind DQN Zoo's ``atari_data.py``; identical to Dopamine's Atari-100k
  table on all 26 Atari-100k games).
* DeepMind Control: ``score / 1000`` (every suite task's per-step reward lies in [0, 1] and an
  episode is 1000 simulator steps, so returns lie in [0, 1000]).
* Other Gymnasium ids: no standard normaliser; scores stay raw.

Suites (lists of rlaux env names; see :data:`SUITES`):

* ``atari100k``: the 26 Atari-100k games (Kaiser et al. 2020; Dopamine / SPR lists); train them
  with ``env.protocol=100k``.
* ``atari57``: the 57 games of the random/human table.
* ``dmc-tcrl`` and ``dmc-tcrl-{easy,medium,hard}``: the 24 state-based tasks with reported TCRL
  returns, split by their training budget in TCRL's results (0.5M / 1M / 5M env steps).
* ``dmc-drqv2`` and ``dmc-drqv2-{easy,medium,hard}``: DrQ-v2's pixel task split (its
  ``cfgs/task/*.yaml``: 1.1M / 3.1M / 30.1M frames). DrQ-v2's ``reach_duplo`` (a
  dm_control.manipulation task) is left out: rlaux builds ``dm_control.suite`` tasks only.

``python -m rlaux.scores`` lists the suites; ``python -m rlaux.scores suite=NAME`` prints one
as a comma-separated list, ready for a Hydra sweep::

    python -m rlaux.train -m agent=dqn env.protocol=100k env=$(python -m rlaux.scores suite=atari100k)
"""

from __future__ import annotations

import csv
import difflib
import functools
import math
import re
import sys
from collections.abc import Sequence
from importlib import resources

DMC_MAX_RETURN = 1000.0
ATARI_TABLE = "atari_human_random.csv"
NORMALIZATIONS = ("auto", "none")

#: The 26 Atari-100k games (ALE names).
ATARI_100K_GAMES: tuple[str, ...] = (
    "Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout",
    "ChopperCommand", "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero",
    "Jamesbond", "Kangaroo", "Krull", "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert",
    "RoadRunner", "Seaquest", "UpNDown",
)

_TCRL_EASY = ("cartpole-swingup", "ball_in_cup-catch", "finger-spin", "hopper-stand", "pendulum-swingup", "walker-walk")
_TCRL_MEDIUM = (
    "acrobot-swingup", "cartpole-swingup_sparse", "cheetah-run", "finger-turn_easy", "finger-turn_hard", "fish-swim",
    "fish-upright", "quadruped-run", "quadruped-walk", "reacher-easy", "reacher-hard", "walker-run",
)
_TCRL_HARD = ("dog-run", "dog-trot", "dog-walk", "humanoid-run", "humanoid-stand", "humanoid-walk")
_DRQV2_EASY = (
    "cartpole-balance", "cartpole-balance_sparse", "cartpole-swingup", "ball_in_cup-catch", "finger-spin",
    "hopper-stand", "pendulum-swingup", "walker-stand", "walker-walk",
)
_DRQV2_MEDIUM = (
    "acrobot-swingup", "cartpole-swingup_sparse", "cheetah-run", "finger-turn_easy", "finger-turn_hard", "hopper-hop",
    "quadruped-run", "quadruped-walk", "reacher-easy", "reacher-hard", "walker-run",
)
_DRQV2_HARD = ("humanoid-run", "humanoid-stand", "humanoid-walk")


def _atari_ids(games: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"ALE/{g}-v5" for g in games)


@functools.lru_cache(maxsize=1)
def atari_table() -> dict[str, tuple[float, float]]:
    """``{game: (random, human)}`` from the packaged CSV (57 games)."""
    text = resources.files("rlaux").joinpath("data", ATARI_TABLE).read_text()
    rows = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    return {r["game"]: (float(r["random"]), float(r["human"])) for r in rows}


def _suites() -> dict[str, tuple[str, ...]]:
    return {
        "atari100k": _atari_ids(ATARI_100K_GAMES),
        "atari57": _atari_ids(sorted(atari_table())),
        "dmc-tcrl": _TCRL_EASY + _TCRL_MEDIUM + _TCRL_HARD,
        "dmc-tcrl-easy": _TCRL_EASY,
        "dmc-tcrl-medium": _TCRL_MEDIUM,
        "dmc-tcrl-hard": _TCRL_HARD,
        "dmc-drqv2": _DRQV2_EASY + _DRQV2_MEDIUM + _DRQV2_HARD,
        "dmc-drqv2-easy": _DRQV2_EASY,
        "dmc-drqv2-medium": _DRQV2_MEDIUM,
        "dmc-drqv2-hard": _DRQV2_HARD,
    }


SUITE_NAMES: tuple[str, ...] = tuple(_suites())


def suite(name: str) -> list[str]:
    """The env names of suite ``name`` (ValueError naming the valid suites otherwise)."""
    suites = _suites()
    if name not in suites:
        close = difflib.get_close_matches(str(name), list(suites), n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"Unknown suite={name!r}.{hint} Valid choices: {', '.join(suites)}.")
    return list(suites[name])


_ATARI_ID = re.compile(r"^(?:ALE/)?(?P<game>[A-Za-z]+?)(?:NoFrameskip)?(?:-v\d+)?$")


def atari_game(env_name: str) -> str:
    """``"ALE/Pong-v5"`` (or ``"PongNoFrameskip-v4"``, ``"Pong"``) -> ``"Pong"``."""
    m = _ATARI_ID.match(str(env_name))
    if not m:
        raise ValueError(f"{env_name!r} is not an Atari env name (expected ALE/<Game>-v5)")
    return m.group("game")


def atari_reference(env_name: str) -> tuple[float, float]:
    """(random, human) scores of an Atari game, from the pinned table."""
    game = atari_game(env_name)
    table = atari_table()
    if game not in table:
        close = difflib.get_close_matches(game, list(table), n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise KeyError(f"no random/human reference score for Atari game {game!r}.{hint} "
                       f"The table ({ATARI_TABLE}) covers the 57 games of Atari-57; use normalize=none for others.")
    return table[game]


def human_normalized(env_name: str, score: float) -> float:
    """Human-normalised score of a raw Atari return: (score - random) / (human - random)."""
    random_score, human_score = atari_reference(env_name)
    return (float(score) - random_score) / (human_score - random_score)


def dmc_normalized(score: float) -> float:
    """DeepMind Control return divided by its maximum, 1000."""
    return float(score) / DMC_MAX_RETURN


def normalizer_name(kind: str, method: str = "auto") -> str:
    """What :func:`normalize` does for an env ``kind`` ("atari", "dmc", "gym"): a short label."""
    _check_method(method)
    if method == "none" or kind not in ("atari", "dmc"):
        return "raw return"
    return "human-normalised score" if kind == "atari" else "return / 1000"


def normalize(env_name: str, kind: str, score: float, method: str = "auto") -> float:
    """Normalised score of a raw return: HNS for Atari, /1000 for DMC, raw for other kinds
    (and for ``method="none"``)."""
    _check_method(method)
    if method == "none" or not math.isfinite(float(score)):
        return float(score)
    if kind == "atari":
        return human_normalized(env_name, score)
    if kind == "dmc":
        return dmc_normalized(score)
    return float(score)


def _check_method(method: str) -> None:
    if method not in NORMALIZATIONS:
        raise ValueError(f"normalize={method!r} is invalid; valid choices: {', '.join(NORMALIZATIONS)}")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlaux.scores [suite=NAME]``: list the suites, or print one comma-separated."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        for name, envs in _suites().items():
            print(f"{name} ({len(envs)}): {', '.join(envs)}")
        return
    if len(args) != 1 or not args[0].startswith("suite="):
        print(f"rlaux: error: unexpected argument(s) {' '.join(args)!r}; usage: python -m rlaux.scores [suite=NAME]",
              file=sys.stderr)
        sys.exit(2)
    try:
        print(",".join(suite(args[0].split("=", 1)[1])))
    except ValueError as exc:
        print(f"rlaux: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
