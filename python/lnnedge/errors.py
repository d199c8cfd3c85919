"""The one base class of every user-facing error in lnnedge.

A user mistake (a bad recipe or board entry, a corrupt model file, a missing artefact, a device
that refuses a deploy) raises a subclass of `LnnedgeError`; tasks.py catches this one class and
prints its message as a single line with a non-zero exit. Anything else is a bug in the kit and
keeps its traceback.
"""

from __future__ import annotations


class LnnedgeError(Exception):
    """A problem the user can act on; its message names the file, key, value or device involved."""


class UsageError(LnnedgeError, ValueError):
    """A command-line value out of its range or of the wrong kind (--epochs 0, --row abc, --inputs nan)."""
