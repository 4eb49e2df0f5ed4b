"""Paper recipes: ``recipe=<name>`` sets every agent/aux/env key a paper's released code sets.

A recipe is a list of :class:`Setting` rows (rlaux key, value, where the authors' code sets it).
:func:`rlaux.config.register_configs` stores the rows of the recipe the command line names as
the ``recipe/<name>`` node (package ``_global_``, applied after ``agent``, ``env``, ``aux`` and
``train.yaml``), so every key stays overridable on the command line after the recipe; the run's
``config.yaml`` records ``recipe: <name>``. The same rows write the cards ``docs/recipes/<name>.md``
(:func:`card`; ``tests/test_recipes.py`` checks the cards on disk are what the rows give).

Recipes whose tier depends on the task (``tcrl``, ``drqv2``, ``taco``) pick it from the task lists
of the authors' ``cfgs/task/*.yaml``; ``recipe=tcrl-hard`` (etc.) forces a tier.

Sources (the audit ``shared/reference/FIDELITY-AUDIT.md`` sections 1-2): tcrl = ``zhaoyi11/tcrl``
@ 9773d8e, taco = ``FrankZheng2022/TACO`` @ 84c38e3 (its DrQ-v2 copy is the DrQ-v2 reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlaux.config import ConfigError

TIERS = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Setting:
    key: str  #: dotted rlaux key (``agent.lr``)
    value: Any
    reference: str  #: file:line in the authors' repository
    note: str = ""


# zhaoyi11/tcrl cfgs/task/<task>.yaml `defaults: - easy|medium|hard`
TCRL_TIERS = {
    "easy": ("cartpole-balance", "cartpole-balance_sparse", "cartpole-swingup", "ball_in_cup-catch", "finger-spin",
             "hopper-stand", "point_mass-easy", "pendulum-swingup", "walker-stand", "walker-walk"),
    "medium": ("acrobot-swingup", "cartpole-swingup_sparse", "cheetah-run", "finger-turn_easy", "finger-turn_hard",
               "fish-swim", "fish-upright", "hopper-hop", "point_mass-hard", "quadruped-run", "quadruped-walk",
               "reacher-easy", "reacher-hard", "swimmer-swimmer15", "swimmer-swimmer6", "walker-run"),
    "hard": ("dog-run", "dog-stand", "dog-trot", "dog-walk", "humanoid-run", "humanoid-stand", "humanoid-walk"),
}
# FrankZheng2022/TACO cfgs/task/<task>.yaml (DrQ-v2's task split)
DRQV2_TIERS = {
    "easy": ("cartpole-balance", "cartpole-balance_sparse", "cartpole-swingup", "ball_in_cup-catch", "finger-spin",
             "hopper-stand", "pendulum-swingup", "walker-stand", "walker-walk"),
    "medium": ("acrobot-swingup", "acrobot-swingup_sparse", "cartpole-swingup_sparse", "cheetah-run",
               "finger-turn_easy", "finger-turn_hard", "hopper-hop", "quadruped-run", "quadruped-walk",
               "reach-duplo", "reacher-easy", "reacher-hard", "walker-run"),
    "hard": ("manipulator-bring_ball",),
}


def canonical_task(env: str) -> str:
    """``domain-task`` in the suite's spelling (``cup-catch`` -> ``ball_in_cup-catch``); other names as given."""
    from envs.registry import parse_dmc_name

    try:
        domain, task = parse_dmc_name(env)
    except Exception:  # not a DMC name: check_env reports it
        return env
    return f"{domain}-{task}"


def tier_of(task: str, tiers: dict[str, tuple[str, ...]], recipe: str) -> str:
    for tier, tasks in tiers.items():
        if task in tasks:
            return tier
    raise ConfigError(f"recipe={recipe} has no tier for env={task} (the authors' task lists: "
                      f"{', '.join(t for ts in tiers.values() for t in ts)}); force one with "
                      f"recipe={recipe}-easy, -medium or -hard")


def _tcrl(tier: str, task: str) -> list[Setting]:
    t = f"cfgs/task/{tier}.yaml"
    episodes = {"easy": 500, "medium": 1000, "hard": 5000}[tier]
    std = {"easy": (0.1, 50), "medium": (0.1, 150), "hard": (0.2, 500)}[tier]
    rows = [
        Setting("agent.name", "ddpg", "tcrl.py:14-44,73 (Actor, Critic, TCRL)", "selected with agent=ddpg"),
        Setting("aux", ["tcrl"], "tcrl.py:146-166", "selected with aux=tcrl"),
        Setting("env.obs", "state", "env.py:257", "concatenated raw state"),
        Setting("steps", episodes * 500, f"{t}:1 train_episode: {episodes}",
                "episodes x 500 agent steps (1000 frames, action repeat 2)"),
        Setting("eval_every", 12500, "default.yaml:25 every 25 episodes"),
        Setting("agent.batch_size", 512, "default.yaml:29"),
        Setting("agent.buffer_size", "${steps}", "main.py:41,112 max_size=int(cfg.train_step)",
                "the whole run"),
        Setting("agent.learning_starts", 5000, "default.yaml:24 10 random episodes"),
        Setting("agent.update_every", 2, "main.py:142-146 250 updates per 500-step episode",
                "same ratio, interleaved instead of a burst"),
        Setting("agent.nstep", 1 if task.startswith("humanoid-") else 3,
                "cfgs/task/humanoid_run.yaml:8 nstep: 1" if task.startswith("humanoid-") else "default.yaml:37"),
        Setting("agent.lr", 3e-4, "tcrl.py:95-96"),
        Setting("agent.tau", 0.005, "default.yaml:33"),
        Setting("agent.hidden", [512, 512], "default.yaml:43; tcrl.py:17-20,33-36"),
        Setting("agent.activation", "elu", "net.py:16-25"),
        Setting("agent.layernorm_tanh", True, "tcrl.py:17-20,33-36 Linear+LayerNorm+Tanh trunk"),
        Setting("agent.std_init", 1.0, f"{t}:3"),
        Setting("agent.std_final", std[0], f"{t}:3 linear(1.0, {std[0]}, {std[1]})"),
        Setting("agent.std_steps", std[1] * 500, f"{t}:3 (by episode: main.py:146)",
                f"{std[1]} episodes x 500 agent steps"),
        Setting("agent.std_clip", 0.3, "tcrl.py:183,198"),
        Setting("agent.encoder.kind", "mlp", "tcrl.py:48"),
        Setting("agent.encoder.latent_dim", 100 if tier == "hard" else 50,
                f"{t}:2 latent_dim: {100 if tier == 'hard' else 50}"),
        Setting("agent.encoder.hidden", [512, 512], "default.yaml:43"),
        Setting("agent.aux.optimizer", "separate", "tcrl.py:93-94 own Adam over encoder + trans"),
        Setting("agent.aux.lr", 3e-4, "default.yaml:40"),
        Setting("agent.aux.weight_decay", 1e-6, "default.yaml:41"),
        Setting("agent.aux.grad_clip", 10.0, "tcrl.py:168"),
        Setting("aux.tcrl.target_init", "random", "tcrl.py:83 fresh Encoder, never load_state_dict"),
    ]
    return rows


DRQV2_DEVIATIONS = [
    "Rendering: rlaux renders DMC without shadows and reflections (`envs/dmc.py`); DrQ-v2/TACO render "
    "MuJoCo's default with both (`dmc.py:202-205`). No option exists yet.",
    "Target critic starts as a copy of the critic (rlaux) rather than TACO's fresh random draw; early training only.",
    "Random warm-up and first update are one setting in rlaux (`agent.learning_starts` = 2,000 agent steps); "
    "upstream has 2,000 uniform-action steps (`taco.yaml:11`) and 4,000 seed frames = 2,000 agent steps "
    "(`config.yaml:13`): the same numbers.",
    "Evaluation every 10,000 agent steps (upstream 10k frames = 5k agent steps): cosmetic.",
]


def _drqv2(tier: str, task: str, taco: bool = False) -> list[Setting]:
    t = f"cfgs/task/{tier}.yaml"
    std_steps = {"easy": 100_000, "medium": 500_000, "hard": 2_000_000}[tier]
    frames = {"easy": 1_100_000, "medium": 3_100_000, "hard": 30_100_000}[tier]
    walker = task.startswith("walker-")
    rows = [
        Setting("agent.name", "ddpg", "agents/taco.py:184 TACOAgent (DrQ-v2 actor-critic)", "selected with agent=ddpg"),
        Setting("aux", ["taco"] if taco else [], "agents/taco.py:300-341" if taco else "-",
                "selected with aux=taco" if taco else "no objective"),
        Setting("env.obs", "pixels", "dmc.py:179-209 84x84 RGB, frame stack 3"),
        Setting("steps", frames // 2, f"{t}:1 num_train_frames: {frames}", "frames / action repeat 2"),
        Setting("agent.batch_size", 1024 if taco else (512 if walker else 256),
                "cfgs/agent/taco.yaml:26" if taco else
                ("cfgs/task/walker_*.yaml:7" if walker else "config.yaml:23")),
        Setting("agent.buffer_size", 100_000 if task == "quadruped-run" else 1_000_000,
                "cfgs/task/quadruped_run.yaml:6" if task == "quadruped-run" else "config.yaml:20"),
        Setting("agent.learning_starts", 2000, "config.yaml:13 4000 seed frames; taco.yaml:11 num_expl_steps"),
        Setting("agent.update_every", 2, "taco.yaml:9"),
        Setting("agent.nstep", 1 if walker else 3, "cfgs/task/walker_*.yaml:6" if walker else "config.yaml:22"),
        Setting("agent.lr", 1e-4, "config.yaml:33"),
        Setting("agent.tau", 0.01, "taco.yaml:8"),
        Setting("agent.hidden", [1024, 1024], "taco.yaml:12 hidden_dim: 1024"),
        Setting("agent.activation", "relu", "agents/taco.py:158-169"),
        Setting("agent.layernorm_tanh", False, "agents/taco.py:133-140 (one LN+Tanh, in the trunk)"),
        Setting("agent.trunk_dim", 50, "config.yaml:35 feature_dim: 50; agents/taco.py:133-140"),
        Setting("agent.std_init", 1.0, f"{t}:2"),
        Setting("agent.std_final", 0.1, f"{t}:2"),
        Setting("agent.std_steps", std_steps, f"{t}:2 linear(1.0,0.1,{std_steps})",
                "AGENT steps: global_step, train.py:170-185"),
        Setting("agent.std_clip", 0.3, "taco.yaml:15"),
        Setting("agent.encoder.kind", "drq", "agents/taco.py:43 Encoder (DrQ conv net)"),
        Setting("agent.augment", "auto", "agents/taco.py:10-41 random shift pad 4", "on for pixels"),
        Setting("agent.max_grad_norm", 0.0, "agents/taco.py (no clip_grad call)"),
    ]
    if taco:
        rows += [
            Setting("agent.aux.optimizer", "separate", "agents/taco.py:224 taco_opt"),
            Setting("agent.aux.lr", 1e-4, "agents/taco.py:224; config.yaml:34 encoder_lr"),
            Setting("agent.aux.weight_decay", 0.0, "agents/taco.py:224 (Adam, no weight decay)"),
            Setting("agent.aux.grad_clip", 0.0, "agents/taco.py:341 (no clip_grad call)"),
        ]
    return rows


RECIPE_TIERS = {"tcrl": TCRL_TIERS, "drqv2": DRQV2_TIERS, "taco": DRQV2_TIERS}
DEVIATIONS = {
    "tcrl": [
        "Critic: each of the two Q heads has its own Linear+LayerNorm+Tanh first layer; TCRL shares one "
        "trunk between them (`tcrl.py:33-36`). No option exists.",
        "The target critic starts as a copy of the critic (rlaux); TCRL draws it fresh (`tcrl.py:90`). No option "
        "exists (the target encoder's fresh draw is set: `aux.tcrl.target_init=random`). Early training only.",
        "Updates are interleaved (1 per 2 agent steps) instead of TCRL's burst of 250 after each episode: same ratio.",
        "Evaluation: `eval_every` matches (12,500 agent steps); 10 episodes as upstream.",
    ],
    "drqv2": DRQV2_DEVIATIONS,
    "taco": [
        "TACO's critic reads the latent action psi(a) and the critic loss trains psi (`agents/taco.py:161-175,279`); "
        "rlaux's critic takes the raw action and psi is trained only by the TACO loss. No option exists.",
        "Update order: rlaux runs aux -> critic -> actor -> EMA; TACO critic -> actor -> EMA -> TACO (cosmetic).",
        *DRQV2_DEVIATIONS,
    ],
}


def recipe_names() -> list[str]:
    return sorted([*RECIPE_TIERS, *(f"{r}-{t}" for r in RECIPE_TIERS for t in TIERS)])


def settings(name: str, env: str) -> list[Setting]:
    """The rows of recipe ``name`` (``tcrl``, ``tcrl-hard``, ...) for task ``env``."""
    base, _, forced = name.partition("-")
    if base not in RECIPE_TIERS or (forced and forced not in TIERS):
        raise ConfigError(f"Unknown recipe={name!r}. Valid choices: none, {', '.join(recipe_names())}.")
    env = canonical_task(env)
    tier = forced or tier_of(env, RECIPE_TIERS[base], name)
    if base == "tcrl":
        return _tcrl(tier, env)
    return _drqv2(tier, env, taco=base == "taco")


def check_env(name: str, env: str, kind: str) -> None:
    """Raise for an env the recipe cannot serve (every recipe here is for DMC continuous control)."""
    if kind != "dmc":
        what = "pixel" if name.startswith(("drqv2", "taco")) else "state"
        raise ConfigError(f"recipe={name} is for DeepMind Control {what} tasks (continuous actions); env={env} is "
                          f"{kind}; pick a DMC task such as env=cheetah-run")


def node(name: str, env: str) -> dict[str, Any]:
    """The ``recipe/<name>`` config node (package ``_global_``); ``agent.name`` and ``aux`` are
    selected as groups (:func:`group_overrides`), not written here."""
    out: dict[str, Any] = {"recipe": name}
    for s in settings(name, env):
        if s.key in ("agent.name", "aux"):
            continue
        parts = s.key.split(".")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = s.value
    return out


def group_overrides(name: str, env: str) -> dict[str, str]:
    """The group choices a recipe makes (``agent=ddpg``, ``aux=tcrl``)."""
    rows = {s.key: s.value for s in settings(name, env)}
    aux = rows["aux"]
    return {"agent": rows["agent.name"], "aux": (aux[0] if len(aux) == 1 else "none") if aux else "none"}


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


CARD_ENVS = {"tcrl": ("cheetah-run", "dog-run", "humanoid-run"), "drqv2": ("cheetah-run", "walker-walk"),
             "taco": ("cheetah-run", "quadruped-run")}


def card(base: str) -> str:
    """The card ``docs/recipes/<base>.md``: one table per example task, then the deviations."""
    src = "zhaoyi11/tcrl @ 9773d8e" if base == "tcrl" else "FrankZheng2022/TACO @ 84c38e3 (its DrQ-v2 copy)"
    lines = [f"# Recipe `{base}`", "",
             f"`python -m rlaux.train recipe={base} env=<task>`: the settings of {src}, picked by task tier "
             f"(`recipe={base}-easy|-medium|-hard` forces one). Every key can still be overridden after it.",
             "Generated from `rlaux/recipes.py` (`python -m rlaux.recipes`); `tests/test_recipes.py` fails when "
             "this file and the recipe differ.", ""]
    lines += ["Tiers (the authors' `cfgs/task/*.yaml`):", ""]
    for tier, tasks in RECIPE_TIERS[base].items():
        lines.append(f"- {tier}: {', '.join(tasks)}")
    for env in CARD_ENVS[base]:
        lines += ["", f"## env={env}", "", "| rlaux key | value | reference (file:line) | note |", "|---|---|---|---|"]
        for s in settings(base, env):
            lines.append(f"| `{s.key}` | `{_fmt(s.value)}` | {s.reference} | {s.note} |")
    lines += ["", "## Deviations that remain", ""] + [f"- {d}" for d in DEVIATIONS[base]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "docs" / "recipes"
    for base in RECIPE_TIERS:
        (root / f"{base}.md").write_text(card(base))
        print(root / f"{base}.md")
