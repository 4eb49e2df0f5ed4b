"""rlaux agents: ppo, sac (and the deterministic ddpg recipe), dqn. Importing registers them."""

from agents.base import AGENTS, Agent, agent_class, register_agent
from agents import dqn, ppo, sac  # noqa: E402,F401  (registration side effects)

__all__ = ["AGENTS", "Agent", "agent_class", "register_agent"]
