"""Auxiliary objectives. Importing this package registers every objective by name."""

from rlaux.objectives.base import OBJECTIVES, AuxObjective, IncompatibleObjectiveError, ObjectiveConfig, register_objective
from rlaux.objectives.suite import AuxSuite, build_aux_suite

__all__ = [
    "OBJECTIVES",
    "AuxObjective",
    "AuxSuite",
    "IncompatibleObjectiveError",
    "ObjectiveConfig",
    "build_aux_suite",
    "register_objective",
]
