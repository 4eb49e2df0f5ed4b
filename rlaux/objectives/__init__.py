"""Auxiliary objectives. Importing this package registers every objective by name."""

from rlaux.objectives.base import OBJECTIVES, AuxObjective, IncompatibleObjectiveError, ObjectiveConfig, register_objective
from rlaux.objectives.predictive import PredictiveConfig, PredictiveObjective
from rlaux.objectives.proto_value import ProtoValueConfig, ProtoValueObjective
from rlaux.objectives.suite import AuxSuite, build_aux_suite
from rlaux.objectives.taco import TACOConfig, TACOObjective
from rlaux.objectives.tcrl import TCRLConfig, TCRLObjective

__all__ = [
    "OBJECTIVES",
    "AuxObjective",
    "AuxSuite",
    "IncompatibleObjectiveError",
    "ObjectiveConfig",
    "PredictiveConfig",
    "PredictiveObjective",
    "ProtoValueConfig",
    "ProtoValueObjective",
    "TACOConfig",
    "TACOObjective",
    "TCRLConfig",
    "TCRLObjective",
    "build_aux_suite",
    "register_objective",
]
