"""Training: :mod:`~rlaux.training.runner` runs one run from start (or resume) to its summary.

:mod:`~rlaux.training.run` (:class:`TrainingRun`: the run folder, counters, logging,
evaluation, checkpoints) is built from :mod:`~rlaux.training.build` (device, seeds, envs) and
saved by :mod:`~rlaux.training.state`; :mod:`~rlaux.training.health` holds the NaN/Inf policy,
:mod:`~rlaux.training.signals` the graceful stop, :mod:`~rlaux.training.evaluation` the episode
runner. The loops (:mod:`~rlaux.training.loop`, :mod:`~rlaux.training.off_policy`,
:mod:`~rlaux.training.on_policy`) own the stepping and their state.
"""
