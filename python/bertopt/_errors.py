"""bertopt's exceptions: one class per exit code of the CLI, carrying the CLI's message."""

from __future__ import annotations


class Error(Exception):
    """Base of every bertopt error.

    ``exit_code`` is what the same failure exits with from the ``bertopt`` CLI, ``status`` the
    C++ status code name (``"invalid model"``, ``"not found"``, ...), and ``str(error)`` the
    CLI's one-line message, without the ``bertopt <command>: `` prefix.
    """

    exit_code: int = 1

    def __init__(self, message: str, status: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class BadInputError(Error, ValueError):
    """Exit code 2: bad input. A missing, empty, truncated or non-ONNX model, a bad argument or
    option, or something the model does not allow (a num_heads the graph contradicts)."""

    exit_code = 2


class FailedError(Error, RuntimeError):
    """Exit code 1: the work ran and failed: a verification or comparison that did not pass,
    ONNX Runtime failing a run, or an internal error."""

    exit_code = 1


def _from_status(exit_code: int, status: str, message: str) -> Error:
    """The exception for a C++ Status (called by the extension module)."""
    cls = BadInputError if exit_code == BadInputError.exit_code else FailedError
    return cls(message, status)
