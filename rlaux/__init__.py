"""rlaux: RL agents on a shared observation encoder with composable auxiliary objectives."""

__version__ = "0.1.0"
