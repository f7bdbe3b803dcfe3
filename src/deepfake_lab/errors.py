"""The one exception type that reaches users as a single line instead of a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad path, bad option, missing file).

    The CLI prints ``error: <message>`` and exits non-zero, without a traceback.
    The message should say what is wrong and what to do about it.
    """
