"""Stable-Baselines3 bridge: train SB3's PPO, A2C, SAC, TD3, DDPG and DQN with rlaux's auxiliary
objectives (the same classes as ``python -m rlaux.train``, from :mod:`rlaux.objectives`).

    from rlaux.sb3 import AuxPPO
    model = AuxPPO("MlpPolicy", "CartPole-v1", aux=["tcrl"], aux_kwargs=dict(optimizer="joint"))

Modules: :mod:`~rlaux.sb3.algorithms` (the classes, :func:`with_aux`), :mod:`~rlaux.sb3.mixin`
(what is overridden), :mod:`~rlaux.sb3.core` (suite, hooks, metrics), :mod:`~rlaux.sb3.routing`
(which extractor, which optimiser), :mod:`~rlaux.sb3.encoder` (SB3 extractor as an rlaux
encoder; :class:`MlpFeatures`), :mod:`~rlaux.sb3.buffers` and :mod:`~rlaux.sb3.windows`
(masked windows from SB3 buffers, Dict and HER ones included), :mod:`~rlaux.sb3.options`
(``aux_kwargs``). Dict observations (``MultiInputPolicy``, HER) reach the objectives as one flat
vector per observation (:mod:`rlaux.buffers.dict_obs`).
"""

import envs  # noqa: F401  (registers the rlaux/<domain>-<task>-v0 Gymnasium ids, so SB3 accepts them as strings)
from rlaux.sb3.algorithms import AuxA2C, AuxDDPG, AuxDQN, AuxPPO, AuxSAC, AuxTD3, with_aux
from rlaux.sb3.buffers import (
    AuxDictRolloutBuffer,
    AuxRolloutBuffer,
    RolloutRecorder,
    WindowReplayBuffer,
    replay_window_source,
)
from rlaux.sb3.encoder import FeaturesEncoder, MlpFeatures, aux_policy_kwargs
from rlaux.sb3.options import AuxOptions
from rlaux.sb3.windows import WindowSource

__all__ = [
    "AuxA2C",
    "AuxDDPG",
    "AuxDictRolloutBuffer",
    "AuxDQN",
    "AuxOptions",
    "AuxPPO",
    "AuxRolloutBuffer",
    "AuxSAC",
    "AuxTD3",
    "FeaturesEncoder",
    "MlpFeatures",
    "RolloutRecorder",
    "WindowReplayBuffer",
    "WindowSource",
    "aux_policy_kwargs",
    "replay_window_source",
    "with_aux",
]
