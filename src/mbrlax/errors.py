"""Errors that name the problem; the CLI prints them as one line, without a traceback."""


class MbrlaxError(Exception):
    """Base class of every error the library raises on bad input or a failed run."""


class ConfigError(MbrlaxError, ValueError):
    """A setting, env id, shape or action space that cannot work.

    A config's check names the setting as ``Class.field`` (:mod:`mbrlax.utils.validate`); the CLI
    shows that as the flag (``ModelConfig.num_elites`` -> ``--model.num-elites``).
    """


class DataError(MbrlaxError, ValueError):
    """A corrupt, mismatched or unreadable file (the message names it)."""


class TrainingDivergedError(MbrlaxError, FloatingPointError):
    """Training produced NaN/inf; the last good parameters are attached as ``.last_good``."""

    def __init__(self, message: str, last_good=None):
        super().__init__(message)
        self.last_good = last_good
