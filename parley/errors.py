"""Typed errors. Each carries a message a user can act on (what is wrong and the fix)."""


class ParleyError(Exception):
    """Base class for errors Parley reports to users instead of a traceback."""


class ConfigError(ParleyError):
    """An agent config or setting is invalid."""


class ProviderUnavailable(ParleyError):
    """A provider was chosen but its extra, key or model is missing."""


class AudioInputError(ParleyError):
    """An input audio file cannot be used."""
