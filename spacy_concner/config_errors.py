"""Errors about what a training config points to (paths.train, paths.translation,
paths.encoder). Raised while the pipeline is initialised, a ConfigValidationError is
what `spacy train` prints as a message, without a traceback."""
from confection import ConfigValidationError


def config_error(message: str, hint: str = "") -> ConfigValidationError:
    """An error that `spacy train` shows as its message (one line) and a hint line."""
    return ConfigValidationError(title=message, desc=hint or None, errors=[], show_config=False)
