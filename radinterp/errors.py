"""Bad input, reported the one way every command reports it: ``error: WHAT (fix: HOW)``.

Library code raises ordinary exceptions whose message names the fix (``ValueError("... ;
pass --overwrite")``) or :class:`InputError` with the fix apart. The CLI turns any of the
:data:`USER_ERRORS` into one line on stderr and exit code 2 (no traceback); everything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import re


class InputError(ValueError):
    """A bad input the user can fix; ``str(err)`` is ``"WHAT (fix: HOW)"``."""

    def __init__(self, what: str, fix: str) -> None:
        self.what, self.fix = what, fix
        super().__init__(f"{what} (fix: {fix})")


# Exceptions that mean "the input is wrong", not "the code is wrong". The store's StoreError
# (a corrupt or mismatched store) is one too; it is added by name to keep this module a leaf.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
)
_USER_ERROR_NAMES = {"StoreError"}

# A trailing clause that tells the user what to do: "...; pass --overwrite or choose another --out".
_FIX_CLAUSE = re.compile(
    r"^(?P<what>.+?)[;,:]\s+(?:or\s+|else\s+|then\s+)?(?P<fix>(?:pass|use|run|choose|install|add|check|"
    r"generate|give|set|remove|delete|rename|re-export|re-run|rerun|capture|train|try|point|put|"
    r"pick|write|convert|resize|drop|select|start|call|name|make|provide|fix|see)\b.*)$",
    re.IGNORECASE | re.DOTALL,
)

# The registry's miss: "unknown model adapter 'x'; valid names: demo, tiny".
_VALID_NAMES = re.compile(r"^(?P<what>.+?);\s+valid names:\s*(?P<names>.+)$", re.DOTALL)


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` reports bad input (one line, exit 2) rather than a bug (traceback)."""
    return isinstance(err, USER_ERRORS) or any(t.__name__ in _USER_ERROR_NAMES for t in type(err).__mro__)


def error_line(err: BaseException, default_fix: str) -> str:
    """``error: WHAT (fix: HOW)`` on one line; ``default_fix`` when the message names none."""
    if isinstance(err, InputError):
        what, fix = err.what, err.fix
    else:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        msg = " ".join(str(msg).split()) or type(err).__name__
        if "(fix:" in msg:
            return f"error: {msg}"
        names = _VALID_NAMES.match(msg)
        m = _FIX_CLAUSE.match(msg)
        if names:
            what, fix = names.group("what"), f"use one of: {names.group('names')}"
        else:
            what, fix = (m.group("what"), m.group("fix")) if m else (msg, default_fix)
    return f"error: {' '.join(what.split())} (fix: {' '.join(fix.split())})"
