"""rlaux agents: ppo, sac, ddpg (the DrQ-v2/TCRL deterministic recipe), dqn.

Importing the package imports every module in it, so a new ``agents/<name>.py`` with a
``@register_agent`` class is found without an import list (``docs/ADD_AN_AGENT.md``).
"""

import importlib
import pkgutil

from agents.base import AGENTS, Agent, OffPolicyLearner, OnPolicyLearner, agent_class, register_agent

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["AGENTS", "Agent", "OffPolicyLearner", "OnPolicyLearner", "agent_class", "register_agent"]
