"""The one base class of errors caused by what a user gave (a file, a path, a number, an argument).

The command line prints such an error as one line, ``partrm-gym: error: <message>``, and exits
with status 2 (argparse's convention for usage errors); anything else is a bug and keeps its
traceback. So a message must say what is wrong, where (file, key, element) and what to do.
Library code keeps raising the specific subclasses (``ConfigError``, ``DatasetError``,
``AssetError``, ``CheckpointError``, ``UsageError``), each of which also derives from the
built-in exception callers caught before (``ValueError`` or ``RuntimeError``).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; the message names the problem and the fix."""


class UsageError(UserError, ValueError):
    """A command-line argument or environment keyword is out of range or inconsistent."""
