"""The one exception type that reaches users as a single line instead of a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad path, bad option, missing file).

    The CLI prints ``error: <message>`` and exits non-zero, without a traceback.
    The message should say what is wrong and what to do about it.
    """


def os_error_detail(exc: OSError) -> str:
    """``strerror: filename`` of an OSError, in one line."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text}: {exc.filename}" if exc.filename else text


def without_path(message: str, path: object) -> str:
    """``message`` less the ``"<path>: "`` that errors about a file start with, for a line
    that already names the file."""
    return message.removeprefix(f"{path}: ")
