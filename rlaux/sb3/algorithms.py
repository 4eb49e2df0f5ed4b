"""SB3 algorithms trained with rlaux auxiliary objectives: ``AuxPPO``, ``AuxA2C``, ``AuxSAC``,
``AuxTD3``, ``AuxDDPG``, ``AuxDQN``, and :func:`with_aux` for any (sub)class of them.

Each takes the SB3 algorithm's arguments plus ``aux=`` and ``aux_kwargs=``::

    from rlaux.sb3 import AuxPPO
    model = AuxPPO("MlpPolicy", "CartPole-v1", aux=["tcrl"])
    model.learn(100_000)
    model.save("ppo_tcrl")
    model = AuxPPO.load("ppo_tcrl")
"""

from __future__ import annotations

from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from rlaux.sb3.mixin import AuxAlgorithmMixin, OffPolicyAuxMixin, OnPolicyAuxMixin


class AuxPPO(OnPolicyAuxMixin, PPO):
    """SB3 PPO with aux objectives on the policy's features extractor (windows from the rollout)."""


class AuxA2C(OnPolicyAuxMixin, A2C):
    """SB3 A2C with aux objectives on the policy's features extractor (windows from the rollout)."""


class AuxSAC(OffPolicyAuxMixin, SAC):
    """SB3 SAC with aux objectives; ``aux_kwargs["encoder"]`` picks the critic's (default) or the
    actor's features extractor (see :mod:`rlaux.sb3.routing`)."""


class AuxTD3(OffPolicyAuxMixin, TD3):
    """SB3 TD3 with aux objectives on the critic's (default) or the actor's features extractor."""


class AuxDDPG(OffPolicyAuxMixin, DDPG):
    """SB3 DDPG with aux objectives on the critic's (default) or the actor's features extractor."""


class AuxDQN(OffPolicyAuxMixin, DQN):
    """SB3 DQN with aux objectives on the Q-network's features extractor."""


_CLASSES: dict[type, type] = {PPO: AuxPPO, A2C: AuxA2C, SAC: AuxSAC, TD3: AuxTD3, DDPG: AuxDDPG, DQN: AuxDQN}


def with_aux(algorithm_class: type[BaseAlgorithm]) -> type[BaseAlgorithm]:
    """The aux-enabled subclass of an SB3 algorithm class (e.g. your own ``PPO`` subclass).

    ``with_aux(PPO) is AuxPPO``; other classes get a subclass named ``Aux<Name>``, made once and
    cached, so ``with_aux(MyPPO).load(path)`` works across calls. Classes that already have the
    aux mixin are returned as they are.
    """
    if not isinstance(algorithm_class, type) or not issubclass(algorithm_class, BaseAlgorithm):
        raise TypeError(f"with_aux needs an SB3 algorithm class (PPO, SAC, DQN, ...), got {algorithm_class!r}")
    if issubclass(algorithm_class, AuxAlgorithmMixin):
        return algorithm_class
    if algorithm_class not in _CLASSES:
        mixin = OnPolicyAuxMixin if issubclass(algorithm_class, OnPolicyAlgorithm) else OffPolicyAuxMixin
        _CLASSES[algorithm_class] = type(f"Aux{algorithm_class.__name__}", (mixin, algorithm_class),
                                         {"__module__": __name__,
                                          "__doc__": f"{algorithm_class.__name__} with rlaux aux objectives."})
    return _CLASSES[algorithm_class]
