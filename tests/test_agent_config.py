"""Typed agent configs: the presets agree with the dataclasses, one message format for bad
values, unknown keys with suggestions, the deprecated ``detach_encoder`` alias, and the
command-line key check derived from the dataclass fields."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from agents import AGENTS, Agent
from agents.config import EncoderConfig, config_keys
from agents.ddpg import DDPGConfig
from agents.dqn import DQNConfig
from agents.ppo import PPOConfig
from agents.sac import SACAgent, SACConfig
from rlaux.config import ConfigError, compose
from rlaux.validation import check_override_keys, validate_config

PRESETS = Path(__file__).resolve().parents[1] / "configs" / "agent"
REGISTERED = sorted(AGENTS)
STATE = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
BOX = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
CPU = torch.device("cpu")


def field_defaults(config_class: type) -> dict[str, Any]:
    """The field defaults of a config dataclass as a nested dict, read without validating them
    (ppo's ``anneal_steps`` has no default of its own)."""
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(config_class):
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        defaults[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return defaults


def _preset(name: str) -> dict[str, Any]:
    data = OmegaConf.to_container(OmegaConf.load(PRESETS / f"{name}.yaml"), resolve=False)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("name", REGISTERED)
def test_preset_keys_and_defaults_equal_the_dataclass(name: str) -> None:
    preset = _preset(name)
    config_class = AGENTS[name].config_class
    defaults = field_defaults(config_class)
    if preset.get("anneal_steps") == "${steps}":  # the run's length: the dataclass cannot know it
        preset["anneal_steps"] = None
    assert preset == defaults
    assert preset["name"] == name == AGENTS[name].name


@pytest.mark.parametrize("name", REGISTERED)
def test_the_composed_preset_builds_its_config(name: str) -> None:
    cfg = AGENTS[name].config_class.from_config(compose([f"agent={name}", "steps=1000"]).agent)
    assert cfg.name == name and isinstance(cfg.encoder, EncoderConfig)


@pytest.mark.parametrize("config_class, overrides, message", [
    (SACConfig, {"lr": -1}, "agent.lr=-1 is invalid: must be a number > 0"),
    (SACConfig, {"batch_size": 1.5}, "agent.batch_size=1.5 is invalid: must be an integer >= 1"),
    (SACConfig, {"lr": "fast"}, "agent.lr='fast' is invalid: must be a number > 0"),
    (DDPGConfig, {"gamma": 1.5}, "agent.gamma=1.5 is invalid: must be a number in (0, 1]"),
    (DDPGConfig, {"layernorm_tanh": 1}, "agent.layernorm_tanh=1 is invalid: must be true or false"),
    (DDPGConfig, {"augment": "sometimes"}, "agent.augment='sometimes' is invalid: must be auto, true or false"),
    (DQNConfig, {"loss": "l1"}, "agent.loss='l1' is invalid: must be one of huber, mse"),
    (DQNConfig, {"head_hidden": [64, 0]}, "agent.head_hidden=[64, 0] is invalid: must be a list of integers >= 1"),
    (DQNConfig, {"encoder": {"kind": "resnet"}},
     "agent.encoder.kind='resnet' is invalid: must be one of auto, mlp, flat, drq, nature"),
    (PPOConfig, {"aux": {"optimizer": "both"}}, "agent.aux.optimizer='both' is invalid: must be one of separate, joint"),
    (PPOConfig, {"target_kl": 0.0}, "agent.target_kl=0.0 is invalid: must be null or a number > 0"),
    (SACConfig, {"batch_size": 512, "buffer_size": 100},
     "agent.batch_size=512 is invalid: must be <= agent.buffer_size=100 (one batch must fit in the replay); "
     "lower agent.batch_size or raise agent.buffer_size"),
])
def test_a_bad_value_is_one_line_naming_the_value_and_the_rule(config_class: type, overrides: dict,
                                                                message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_class.from_config(overrides)
    assert str(info.value) == message


def test_values_are_normalised_once() -> None:
    cfg = DQNConfig.from_config({"lr": 1, "batch_size": 32.0, "encoder": {"hidden": [16.0]}})
    assert type(cfg.lr) is float and type(cfg.batch_size) is int and cfg.encoder.hidden == [16]
    assert cfg.encoder.latent_dim == 256  # a partial group keeps the agent's other defaults


def test_unknown_key_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"Unknown config key 'agent.encoder.latnet_dim'.*Did you mean "
                                          r"agent.encoder.latent_dim\?"):
        SACConfig.from_config({"encoder": {"latnet_dim": 8}})
    with pytest.raises(ConfigError, match=r"'agent.batch_sise' \(agent=ddpg\).*Did you mean agent.batch_size\?"):
        check_override_keys(["agent=ddpg", "agent.batch_sise=32"])


def test_command_line_agent_keys_are_the_dataclass_fields() -> None:
    for name in REGISTERED:
        tree = config_keys(AGENTS[name].config_class)
        leaves = [f"agent.{k}.{sub}" if subtree else f"agent.{k}" for k, subtree in tree.items()
                  for sub in (subtree or [None])]
        check_override_keys([f"agent={name}", *(f"{key}=1" for key in leaves)])  # every field is accepted


def test_detach_encoder_is_a_deprecated_alias_of_detach_rl() -> None:
    with pytest.warns(FutureWarning, match="agent.detach_encoder is deprecated.*agent.detach_rl"):
        cfg = SACConfig.from_config({"detach_encoder": True})
    assert cfg.detach_rl is True
    with pytest.raises(ConfigError, match="deprecated name of agent.detach_rl"):
        SACConfig.from_config({"detach_encoder": True, "detach_rl": False})
    with pytest.raises(ConfigError, match=r"'agent.detach_encoder' is renamed agent.detach_rl.*agent.detach_rl=\.\.\."):
        check_override_keys(["agent=sac", "agent.detach_encoder=true"])


def test_a_saved_config_with_detach_encoder_still_builds_its_agent() -> None:
    """A config.yaml written before the rename (what ``resume=`` loads) validates and builds."""
    cfg = compose(["agent=sac", "env=Pendulum-v1", "steps=1000", "threads=1", "agent.encoder.latent_dim=4",
                   "agent.hidden=[8]"])
    old = OmegaConf.to_container(cfg, resolve=True)
    old["agent"]["detach_encoder"] = old["agent"].pop("detach_rl") or True
    saved = OmegaConf.create(old)
    with pytest.warns(FutureWarning, match="agent.detach_rl"):
        validate_config(saved)
    with pytest.warns(FutureWarning, match="agent.detach_rl"):
        agent = SACAgent(saved.agent, STATE, BOX, None, CPU)
    assert agent.detach_rl is True


def test_an_agent_takes_its_config_instance_as_is_and_reads_no_dictconfig() -> None:
    cfg = SACConfig(hidden=[8], encoder=EncoderConfig(latent_dim=4, hidden=[]))
    agent = SACAgent(cfg, STATE, BOX, None, CPU)
    assert agent.cfg is cfg
    from_node = SACAgent(OmegaConf.create({"hidden": [8], "encoder": {"latent_dim": 4, "hidden": []}}), STATE, BOX,
                         None, CPU)
    assert dataclasses.asdict(from_node.cfg) == dataclasses.asdict(cfg)
    with pytest.raises(TypeError, match="SACConfig needed, got DQNConfig"):
        SACAgent(DQNConfig(), STATE, BOX, None, CPU)


def test_action_space_hints_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    class DiscreteOnly(Agent):
        name = "zz_discrete_only"
        discrete_actions = True

    with pytest.raises(ValueError, match=r"agent=sac needs a continuous \(Box\) action space.*; use agent=dqn or ppo$"):
        SACAgent.check_action_space(gym.spaces.Discrete(2))
    monkeypatch.setitem(AGENTS, DiscreteOnly.name, DiscreteOnly)
    with pytest.raises(ValueError, match=r"; use agent=dqn, ppo or zz_discrete_only$"):
        SACAgent.check_action_space(gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match=r"agent=zz_discrete_only needs a discrete action space.*; use agent=ddpg, "
                                         r"ppo or sac$"):
        DiscreteOnly.check_action_space(BOX)


def test_run_level_checks_name_the_agent_keys() -> None:
    assert validate_config(compose(["agent=ppo", "steps=1000", "threads=1"])) == []
    with pytest.raises(ConfigError, match=r"agent.num_minibatches=100 is invalid: must be <= the rollout "
                                          r"\(agent.num_steps x num_envs = 4 x 2 = 8 transitions\)"):
        validate_config(compose(["agent=ppo", "steps=1000", "threads=1", "agent.num_steps=4", "env.num_envs=2",
                                 "agent.num_minibatches=100"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = validate_config(compose(["agent=dqn", "steps=100", "threads=1"]))
    assert found == ["agent.learning_starts=1000 >= steps=100: the agent acts randomly and never updates; "
                     "lower agent.learning_starts or raise steps"]
