"""One base class for every error WOW-Ray raises on purpose, so callers can catch ours alone."""


class WowRayError(Exception):
    """Base of all WOW-Ray errors; the message is meant for the person at the terminal."""


class ConfigError(WowRayError):
    """A configuration value is missing or invalid; the message names the field and its source."""


class RegistryError(WowRayError):
    """A registry entry is missing, inconsistent, or its files do not match their recorded hash."""
