"""rlaux agents: ppo, sac, ddpg (the DrQ-v2/TCRL deterministic recipe), dqn. Importing registers them."""

from agents.base import AGENTS, Agent, agent_class, register_agent
from agents import ddpg, dqn, ppo, sac  # noqa: E402,F401  (registration side effects)

__all__ = ["AGENTS", "Agent", "agent_class", "register_agent"]
