"""Errors that mean "the input is wrong", as opposed to a bug: the CLI prints their message, no traceback."""


class ZooError(Exception):
    """Base of the errors whose message tells the user what is wrong and how to fix it."""


class InputShapeError(ZooError, ValueError):
    """A model cannot take the inputs it is given (size, channels, features)."""


class NonFiniteLossError(ZooError, RuntimeError):
    """The training loss became NaN or infinite."""


class ConfigError(ZooError, ValueError):
    """An option's value is out of its range."""
