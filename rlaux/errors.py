"""The base of every error a user can fix: a bad command line, config value, run folder or
checkpoint. The command lines (``rlaux.train``, ``rlaux.evaluate``, ``rlaux.probe``,
``rlaux.report``) print such an error as one ``rlaux: error: ...`` line and exit with status 2,
without a traceback (see :data:`rlaux.kvargs.USER_ERRORS`)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; its message names the problem and the fix."""
