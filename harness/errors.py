"""The one exception type for bad user input."""


class FtbenchError(Exception):
    """Bad input from the user: a missing path, an unknown name, a malformed spec.

    The message is one sentence that names the bad input and says how to fix it. The CLI prints it
    and exits with code 2, before anything is written.
    """
