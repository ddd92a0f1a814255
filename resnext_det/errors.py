"""The plugin's error type for bad settings."""


class ConfigError(ValueError):
    """An invalid or inconsistent backbone setting.

    The message names the offending key (config key or keyword argument), the value given and the
    values that are accepted, so it can be fixed without reading the source.
    """
