"""The exceptions glace raises."""


class Error(Exception):
    """A glace call failed; the message is the one the command line prints."""


class InputError(Error, ValueError):
    """The caller's input is at fault: a file, an option, an array (exit code 2 on the command line)."""
