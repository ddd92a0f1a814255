"""The plugin's error types for bad settings and bad paths."""


class ConfigError(ValueError):
    """An invalid or inconsistent backbone setting.

    The message names the offending key (config key or keyword argument), the value given and the
    values that are accepted, so it can be fixed without reading the source.
    """


class PathError(ConfigError):
    """A file or folder the user named that is not what it must be: missing, of the wrong kind
    (a folder where a file is expected), unreadable, unwritable or on a full disk. The message
    names the path, what it was expected to be and what it is."""
