"""``recipe=<name>``: paper settings as one Hydra group, and their cards in docs/recipes/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from rlaux import recipes
from rlaux.config import ConfigError, compose
from rlaux.validation import validate_config
from tests.test_cli import cli

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "docs" / "recipes"


def _lookup(tree: dict, key: str):
    for part in key.split("."):
        tree = tree.get(part, "<missing>") if isinstance(tree, dict) else "<missing>"
    return tree


def _card_tables(text: str) -> dict[str, dict[str, str]]:
    """{env: {key: value text}} from a card's tables."""
    tables: dict[str, dict[str, str]] = {}
    env = None
    for line in text.splitlines():
        m = re.match(r"## env=(\S+)", line)
        if m:
            env = m.group(1)
            tables[env] = {}
        elif env and line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            tables[env][cells[0].strip("`")] = cells[1].strip("`")
    return tables


def _parse(text: str):
    return yaml.safe_load(text) if not text.startswith("${") else text


@pytest.mark.parametrize("base", sorted(recipes.RECIPE_TIERS))
def test_card_is_generated_from_the_recipe(base):
    assert (CARDS / f"{base}.md").read_text() == recipes.card(base), "run python -m rlaux.recipes"


@pytest.mark.parametrize("base", sorted(recipes.RECIPE_TIERS))
def test_every_card_row_matches_the_resolved_config(base):
    tables = _card_tables((CARDS / f"{base}.md").read_text())
    assert set(tables) == set(recipes.CARD_ENVS[base])
    for env, rows in tables.items():
        cfg = compose([f"recipe={base}", f"env={env}"])
        assert cfg.recipe == base
        raw = OmegaConf.to_container(cfg, resolve=False)  # ${steps} stays as written
        assert set(rows) == {s.key for s in recipes.settings(base, env)}, "every key the recipe sets has a row"
        for key, text in rows.items():
            expected = _parse(text)
            got = sorted(cfg.aux) if key == "aux" else _lookup(raw, key)
            if isinstance(expected, float) or isinstance(got, float):
                assert float(got) == pytest.approx(float(expected)), (env, key)
            else:
                assert got == expected, (env, key)
        validate_config(cfg)


@pytest.mark.parametrize("recipe, env, tier", [
    ("tcrl", "cheetah-run", "medium"), ("tcrl", "walker-walk", "easy"), ("tcrl", "cup-catch", "easy"),
    ("tcrl", "humanoid-walk", "hard"), ("drqv2", "cheetah-run", "medium"), ("drqv2", "walker-walk", "easy"),
    ("taco", "quadruped-run", "medium"),
])
def test_tier_comes_from_the_authors_task_lists(recipe, env, tier):
    tiers = recipes.RECIPE_TIERS[recipe]
    assert recipes.tier_of(recipes.canonical_task(env), tiers, recipe) == tier
    auto = {s.key: s.value for s in recipes.settings(recipe, env)}
    forced = {s.key: s.value for s in recipes.settings(f"{recipe}-{tier}", env)}
    assert auto == forced


def test_tcrl_dog_run_is_the_hard_tier_with_replay_the_whole_run():
    cfg = compose(["recipe=tcrl", "env=dog-run"])
    assert (cfg.agent.name, sorted(cfg.aux)) == ("ddpg", ["tcrl"])
    assert cfg.steps == 2_500_000 and cfg.agent.buffer_size == cfg.steps
    assert (cfg.agent.encoder.latent_dim, cfg.agent.std_final, cfg.agent.std_steps) == (100, 0.2, 250_000)
    assert cfg.agent.nstep == 3
    assert compose(["recipe=tcrl", "env=humanoid-run"]).agent.nstep == 1
    easy = compose(["recipe=tcrl", "env=walker-walk"])
    assert (easy.agent.std_steps, easy.agent.encoder.latent_dim, easy.steps) == (25_000, 50, 250_000)


def test_drqv2_and_taco_settings():
    d = compose(["recipe=drqv2", "env=cheetah-run"])
    assert sorted(d.aux) == [] and d.env.obs == "pixels"
    assert (d.agent.lr, d.agent.tau, d.agent.batch_size, d.agent.std_steps, d.agent.learning_starts) == (
        1e-4, 0.01, 256, 500_000, 2000)
    assert (list(d.agent.hidden), d.agent.activation, d.agent.layernorm_tanh, d.agent.trunk_dim) == (
        [1024, 1024], "relu", False, 50)
    t = compose(["recipe=taco", "env=cheetah-run"])
    assert sorted(t.aux) == ["taco"] and t.agent.batch_size == 1024
    assert (t.agent.aux.lr, t.agent.aux.weight_decay, t.agent.aux.grad_clip) == (1e-4, 0.0, 0.0)
    assert compose(["recipe=drqv2", "env=walker-walk"]).agent.nstep == 1


def test_overrides_after_a_recipe_win():
    cfg = compose(["recipe=tcrl", "env=dog-run", "agent.lr=1e-3", "steps=1000", "agent.encoder.latent_dim=64",
                   "aux.tcrl.target_init=copy"])
    assert (cfg.agent.lr, cfg.steps, cfg.agent.buffer_size, cfg.agent.encoder.latent_dim) == (1e-3, 1000, 1000, 64)
    assert cfg.aux.tcrl.target_init == "copy"
    assert compose([]).recipe is None


@pytest.mark.parametrize("args, message", [
    (["recipe=tcrll", "env=dog-run"], "Unknown recipe='tcrll'"),
    (["recipe=taco", "env=CartPole-v1"], "DeepMind Control pixel tasks"),
    (["recipe=tcrl", "env=Pendulum-v1"], "DeepMind Control state tasks"),
    (["recipe=tcrl", "env=ALE/Pong-v5"], "DeepMind Control"),
    (["recipe=tcrl", "agent=sac", "env=dog-run"], "recipe for agent=ddpg"),
    (["recipe=tcrl", "env=manipulator-bring_ball"], "no tier"),
])
def test_bad_recipe_is_one_error(args, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose(args)


def test_pixel_recipe_on_state_obs_is_refused():
    with pytest.raises(ConfigError, match="pixel recipe"):
        validate_config(compose(["recipe=drqv2", "env=cheetah-run", "env.obs=state"]))


def test_cli_bad_recipe_and_cfg_job(tmp_path):
    bad = cli("recipe=nope", cwd=tmp_path, timeout=120)
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and lines[0].startswith("rlaux: error: Unknown recipe='nope'")
    assert "tcrl" in lines[0] and "taco" in lines[0]
    job = cli("recipe=tcrl", "env=dog-run", "--cfg", "job", cwd=tmp_path, timeout=120)
    assert job.returncode == 0, job.stderr
    printed = yaml.safe_load(job.stdout)
    assert printed["recipe"] == "tcrl" and printed["agent"]["encoder"]["latent_dim"] == 100


def test_cli_short_run_records_the_recipe(tmp_path):
    pytest.importorskip("dm_control")
    run = tmp_path / "run"
    out = cli("recipe=tcrl", "env=cartpole-swingup", "steps=60", "agent.learning_starts=20", "agent.batch_size=8",
              "eval_every=0", "eval_episodes=1", "env.max_episode_steps=30", "logger=none", "progress=false",
              "threads=1", "checkpoint_every=0", f"hydra.run.dir={run}", cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["recipe"] == "tcrl" and saved["agent"]["name"] == "ddpg" and "tcrl" in saved["aux"]
    assert saved["agent"]["encoder"]["latent_dim"] == 50
