"""rlaux agents: ppo, sac, ddpg (the DrQ-v2/TCRL deterministic recipe), dqn. Importing registers them."""

from agents import ddpg, dqn, ppo, sac  # noqa: F401  (registration side effects)
from agents.base import AGENTS, Agent, agent_class, register_agent

__all__ = ["AGENTS", "Agent", "agent_class", "register_agent"]
