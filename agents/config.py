"""Typed agent configs: one dataclass per agent, checked when it is built.

Every agent declares its config class (``config_class``, as the objectives do). The agent
builds it once from the ``agent`` config node (:meth:`AgentConfig.from_config`), so a bad
value fails before any network exists, and updates read plain attributes, never the node.

The shipped presets ``configs/agent/<name>.yaml`` are what Hydra composes for
``agent=<name>``; they carry exactly the fields of the agent's dataclass with the same
defaults (checked by ``tests/test_agent_config.py``). Command-line keys are checked against
the dataclass fields (:func:`config_keys`, used by :mod:`rlaux.validation`).

Every rule failure is one :class:`~rlaux.config.ConfigError` of one format,
``agent.<key>=<value> is invalid: must be <rule>`` (:func:`rlaux.config.invalid_value`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from omegaconf import DictConfig, OmegaConf

from rlaux.config import ConfigError, invalid_value, is_integer, is_number, unknown_key
from rlaux.encoders import ACTIVATIONS, ENCODER_KINDS

ConfigT = TypeVar("ConfigT", bound="AgentConfig")

AUX_OPTIMIZERS = ("separate", "joint")


def _interval(low: float | None, high: float | None, low_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"<= {high:g}" if high is not None else "(finite)"


class FieldRules:
    """Checks the fields of one config dataclass and normalises them in place (integers
    become ``int``, numbers ``float``, lists ``list[int]``); the first failing rule raises
    :func:`~rlaux.config.invalid_value` for ``agent.<prefix><field>``."""

    def __init__(self, config: object, prefix: str = "") -> None:
        self.config = config
        self.prefix = prefix

    def fail(self, name: str, rule: str, fix: str = "") -> ConfigError:
        """The error for field ``name`` (its current value) breaking ``rule``."""
        return invalid_value(f"agent.{self.prefix}{name}", getattr(self.config, name), rule, fix)

    def integer(self, name: str, minimum: int, note: str = "") -> None:
        """An integer >= ``minimum``."""
        value = getattr(self.config, name)
        if not (is_integer(value) and value >= minimum):
            raise self.fail(name, f"an integer >= {minimum}{note}")
        setattr(self.config, name, int(value))

    def number(self, name: str, low: float | None = None, high: float | None = None, *, low_open: bool = False,
               optional: bool = False, note: str = "") -> None:
        """A finite number in the interval (``low_open``: ``low`` excluded); ``optional``: or null."""
        value = getattr(self.config, name)
        if optional and value is None:
            return
        ok = is_number(value) and (low is None or (value > low if low_open else value >= low)) and (
            high is None or value <= high)
        if not ok:
            raise self.fail(name, f"{'null or ' if optional else ''}a number {_interval(low, high, low_open)}{note}")
        setattr(self.config, name, float(value))

    def flag(self, name: str) -> None:
        """true or false."""
        if not isinstance(getattr(self.config, name), bool):
            raise self.fail(name, "true or false")

    def choice(self, name: str, choices: Sequence[Any], rule: str = "") -> None:
        """One of ``choices`` (``rule`` words them when the default listing would not)."""
        value = getattr(self.config, name)
        # booleans match booleans only (1 is not true, 0 is not false)
        if not any(value is c if isinstance(c, bool) else not isinstance(value, bool) and value == c for c in choices):
            raise self.fail(name, rule or f"one of {', '.join(str(c) for c in choices)}")

    def widths(self, name: str, non_empty: bool = False) -> None:
        """A list of layer widths (integers >= 1); ``non_empty``: at least one."""
        value = getattr(self.config, name)
        ok = isinstance(value, (list, tuple)) and all(is_integer(w) and w >= 1 for w in value) and (value or not non_empty)
        if not ok:
            raise self.fail(name, f"a {'non-empty ' if non_empty else ''}list of integers >= 1")
        setattr(self.config, name, [int(w) for w in value])


@dataclass
class EncoderConfig:
    """The shared observation encoder (``agent.encoder``; :func:`rlaux.encoders.make_encoder`)."""

    kind: str = "auto"  #: auto (mlp for vectors, drq/nature for images) | mlp | flat (raw state) | drq | nature
    latent_dim: int = 50  #: MLP encoder output size
    hidden: list[int] = field(default_factory=lambda: [256, 256])  #: MLP encoder hidden widths
    activation: str = "elu"  #: MLP encoder activation

    def __post_init__(self) -> None:
        rules = FieldRules(self, "encoder.")
        rules.choice("kind", ENCODER_KINDS)
        rules.integer("latent_dim", 1)
        rules.widths("hidden")
        rules.choice("activation", tuple(ACTIVATIONS))


@dataclass
class AuxTrainConfig:
    """How the auxiliary objectives (``aux=...``) are trained (``agent.aux``)."""

    optimizer: str = "separate"  #: separate (own Adam, its own step) | joint (added to the agent's RL loss)
    lr: float = 3e-4  #: Adam learning rate of the separate aux optimiser
    weight_decay: float = 0.0  #: Adam weight decay of the separate aux optimiser
    grad_clip: float = 10.0  #: gradient-norm clip of the separate aux step (0: off)

    def __post_init__(self) -> None:
        rules = FieldRules(self, "aux.")
        rules.choice("optimizer", AUX_OPTIMIZERS)
        rules.number("lr", 0.0, low_open=True)
        rules.number("weight_decay", 0.0)
        rules.number("grad_clip", 0.0, note=" (0 disables clipping)")


@dataclass
class AgentConfig:
    """Options every agent has. Subclasses redeclare fields to change their defaults and
    extend :meth:`validate`.

    Loop settings (``num_envs`` here, the replay and rollout sizes in subclasses) sit in the
    same node because ``agent=<name>`` selects them together; the training loops read them,
    the agent does not.
    """

    #: Deprecated keys still read from old configs: {old name: new name}.
    renamed_keys: ClassVar[dict[str, str]] = {"detach_encoder": "detach_rl"}

    name: str = ""  #: the agent's registry name (agent=<name>)
    num_envs: int = 1  #: loop setting: parallel envs (env.num_envs overrides)
    lr: float = 3e-4  #: Adam learning rate of the RL optimiser(s)
    gamma: float = 0.99  #: discount
    max_grad_norm: float = 0.0  #: clip of the RL gradient norm (0: off)
    detach_rl: bool | None = None  #: null: the aux objectives' recipe; true: RL losses do not train the encoder
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    aux: AuxTrainConfig = field(default_factory=AuxTrainConfig)

    def __post_init__(self) -> None:
        self.validate(FieldRules(self))

    def validate(self, rules: FieldRules) -> None:
        """Check (and normalise) every field; subclasses call ``super().validate(rules)``."""
        rules.integer("num_envs", 1)
        rules.number("lr", 0.0, low_open=True)
        rules.number("max_grad_norm", 0.0, note=" (0 disables clipping)")
        rules.choice("detach_rl", (None, True, False), "null, true or false")

    def check_run(self, steps: int, num_envs: int) -> list[str]:
        """Checks that need the run's length and env count: raise :class:`ConfigError` for a
        setting that cannot work, return warnings for one that is probably a mistake."""
        return []

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(cls: type[ConfigT], cfg: AgentConfig | Mapping[str, Any] | DictConfig) -> ConfigT:
        """This agent's config from an instance (returned as is), a mapping or a DictConfig
        node; missing keys take the defaults, unknown keys raise with a suggestion."""
        if isinstance(cfg, cls):
            return cfg
        if isinstance(cfg, AgentConfig):
            raise TypeError(f"{cls.__name__} needed, got {type(cfg).__name__}")
        data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        assert isinstance(data, dict)
        name = data.get("name") or next(f.default for f in dataclasses.fields(cls) if f.name == "name")
        where = f" (agent={name})" if name else ""
        return _build(cls, cls._rename_deprecated(data), "", where)

    @classmethod
    def _rename_deprecated(cls, data: dict[str, Any]) -> dict[str, Any]:
        for old, new in cls.renamed_keys.items():
            if old not in data:
                continue
            value = data.pop(old)
            if data.get(new) is not None and data[new] != value:  # null is the default: the old key sets it
                raise invalid_value(f"agent.{old}", value, f"left out: it is the deprecated name of agent.{new}, "
                                    f"which is also given ({data[new]!r})", f"keep agent.{new} only")
            warnings.warn(f"agent.{old} is deprecated and will be removed in the next release; it is now "
                          f"agent.{new} (same meaning): rename it in the config", FutureWarning, stacklevel=2)
            data[new] = value
        return data


def _nested_default(f: dataclasses.Field) -> Any:
    """The default of a field whose value is itself a config dataclass, else None."""
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return value if dataclasses.is_dataclass(value) else None
    return None


def _build(cls: type, data: Mapping[str, Any], prefix: str, where: str) -> Any:
    """``cls(**data)``, nested config groups built from their sub-mappings over their defaults."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise unknown_key(f"agent.{prefix}{key}", list(fields), where, f"agent.{prefix}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        nested = _nested_default(fields[key])
        if nested is not None:
            if not isinstance(value, Mapping):
                raise invalid_value(f"agent.{prefix}{key}", value, "a group of keys",
                                    f"set its keys, e.g. agent.{prefix}{key}.{dataclasses.fields(nested)[0].name}=...")
            sub = {**dataclasses.asdict(nested), **value}
            value = _build(type(nested), sub, f"{prefix}{key}.", where)
        values[key] = value
    return cls(**values)


def config_keys(cls: type) -> dict[str, Any]:
    """The key tree of a config dataclass: {field: None, or the subtree of a nested config}."""
    tree: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        nested = _nested_default(f)
        tree[f.name] = config_keys(type(nested)) if nested is not None else None
    return tree


@dataclass
class OffPolicyConfig(AgentConfig):
    """Options of the off-policy agents (sac, ddpg, dqn).

    The replay schedule (``batch_size`` ... ``nstep``) is read by the off-policy loop
    (:mod:`rlaux.training.off_policy`), not by the agent.
    """

    batch_size: int = 256  #: loop setting: windows per update
    buffer_size: int = 1_000_000  #: loop setting: replay capacity in transitions (capped at the run's length)
    learning_starts: int = 5000  #: loop setting: agent steps of uniform-random actions before updates begin
    update_every: int = 1  #: loop setting: agent steps between update bursts
    num_updates: int = 1  #: loop setting: updates per burst
    nstep: int = 1  #: loop setting: n of the n-step return in each sampled window
    tau: float = 0.005  #: EMA rate of the target network(s)
    trunk_dim: int = 50  #: width of the Linear+LayerNorm+Tanh trunk after conv features (rlaux.encoders.head_trunk)
    augment: bool | str = "auto"  #: DrQ random shift of pixel observations: auto (on for images) | true | false

    def validate(self, rules: FieldRules) -> None:
        super().validate(rules)
        for name in ("batch_size", "buffer_size", "update_every", "num_updates", "nstep", "trunk_dim"):
            rules.integer(name, 1)
        rules.integer("learning_starts", 0)
        rules.number("gamma", 0.0, 1.0, low_open=True)
        rules.number("tau", 0.0, 1.0, low_open=True)
        rules.choice("augment", ("auto", True, False), "auto, true or false")
        if self.batch_size > self.buffer_size:
            raise rules.fail("batch_size", f"<= agent.buffer_size={self.buffer_size} (one batch must fit in the replay)",
                             "lower agent.batch_size or raise agent.buffer_size")

    def check_run(self, steps: int, num_envs: int) -> list[str]:
        if self.learning_starts >= steps:
            return [f"agent.learning_starts={self.learning_starts} >= steps={steps}: the agent acts randomly and never "
                    "updates; lower agent.learning_starts or raise steps"]
        return []


@dataclass
class ActorCriticConfig(OffPolicyConfig):
    """Options shared by the actor-critic agents (sac, ddpg)."""

    hidden: list[int] = field(default_factory=lambda: [256, 256])  #: actor and critic hidden widths
    activation: str = "relu"  #: actor and critic activation
    num_critics: int = 2  #: critics in the ensemble (min over them in targets and actor losses)

    def validate(self, rules: FieldRules) -> None:
        super().validate(rules)
        rules.widths("hidden", non_empty=True)
        rules.choice("activation", tuple(ACTIVATIONS))
        rules.integer("num_critics", 1)
