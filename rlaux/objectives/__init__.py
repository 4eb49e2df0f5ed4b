"""Auxiliary objectives.

Importing this package imports every module in it, so each ``@register_objective`` class in
``rlaux/objectives/<name>.py`` registers itself: a new objective needs no import line here.
Objectives of other installed packages come in through the entry-point group
``rlaux.objectives`` (:mod:`rlaux.objectives.base`).
"""

import importlib
import pkgutil

from rlaux.objectives.base import (
    OBJECTIVES,
    PLUGIN_GROUP,
    AuxObjective,
    IncompatibleObjectiveError,
    ObjectiveConfig,
    ObjectivePluginError,
    UnknownObjectiveError,
    objective_class,
    register_objective,
)
from rlaux.objectives.suite import AuxSuite, build_aux_suite
from rlaux.objectives.targets import Target

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "OBJECTIVES",
    "PLUGIN_GROUP",
    "AuxObjective",
    "AuxSuite",
    "IncompatibleObjectiveError",
    "ObjectiveConfig",
    "ObjectivePluginError",
    "Target",
    "UnknownObjectiveError",
    "build_aux_suite",
    "objective_class",
    "register_objective",
]
