"""The one base class of errors caused by what a user gave (a file, a path, a number, an argument).

The command line prints such an error as one line, ``partrm-gym: error: <message>``, and exits
with status 2 (argparse's convention for usage errors); anything else is a bug and keeps its
traceback. So a message must say what is wrong, where (file, key, element) and what to do.
Library code keeps raising the specific subclasses (``ConfigError``, ``DatasetError``,
``AssetError``, ``CheckpointError``, ``UsageError``), each of which also derives from the
built-in exception callers caught before (``ValueError`` or ``RuntimeError``).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

USAGE_EXIT = 2  # argparse's exit status for usage errors
DEBUG_ENV = "PARTRM_GYM_DEBUG"  # set (not "0") to show the traceback of user errors too


class UserError(Exception):
    """Bad input from the user; the message names the problem and the fix."""


class UsageError(UserError, ValueError):
    """A command-line argument or environment keyword is out of range or inconsistent."""


# What a user gave that is wrong: a UserError, or a path that is not there or not usable.
USER_ERRORS = (UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def one_line(error: BaseException) -> str:
    """The error's message on one line (an OSError's file named where its message does not)."""
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    return " ".join(text.split())


def run_reporting_user_errors(run: Callable[[], int], prog: str, debug: bool = False) -> int:
    """``run()``'s exit code; a user error prints ``<prog>: error: <one line>`` and gives :data:`USAGE_EXIT`
    (``debug`` or ``$PARTRM_GYM_DEBUG`` adds its traceback). Anything else is a bug and keeps its traceback. The one
    way every entry point (``partrm-gym``, ``python -m partrm_gym.train`` under torchrun) reports errors."""
    debug = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return USAGE_EXIT
