"""Errors whose message is written for the person using the app."""


class UserFacingError(Exception):
    """An error whose `str()` can be shown to the user as it is (no traceback, no server paths)."""


class InputError(UserFacingError, ValueError):
    """A request carried a value the app cannot use (unknown model, out-of-range number, ...)."""


class ModelUnavailableError(UserFacingError, RuntimeError):
    """A model cannot be had (offline, missing, gated, out of memory); the message says what to do."""
