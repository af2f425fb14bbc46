"""User-facing errors: the CLI prints these as one line and exits non-zero, never a traceback."""


class NeuroAddaError(Exception):
    """Bad input or configuration; the message names the file, key or field at fault."""


class InputError(NeuroAddaError):
    """A volume, file, key, shape or dtype that cannot be used."""


class ConfigError(NeuroAddaError):
    """A configuration file or field that does not validate."""


def format_validation_error(err, where: str, flags: dict[str, str] | None = None) -> str:
    """One line for a pydantic ValidationError: ``WHERE: field 'a.b': message (+N more)``, or
    ``--flag VALUE: message`` when the field's value came from a command-line flag (``flags``: field -> flag)."""
    errors = err.errors()
    flags = flags or {}
    first = next((e for e in errors if e["type"] == "extra_forbidden"), None)  # a typo beats "missing"
    first = first or next((e for e in errors if _flag_of(e, flags)), errors[0])  # then a flag's value
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    flag = _flag_of(first, flags)
    if flag is not None:
        return f"{flag} {first['input']}: {first['msg']}{more}"
    loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
    return f"{where}: field '{loc}': {first['msg']}{more}"


def _flag_of(error: dict, flags: dict[str, str]) -> str | None:
    """The flag that set the field at (or above) the error's location, if any."""
    for n in range(len(error["loc"]), 0, -1):
        key = ".".join(str(x) for x in error["loc"][:n])
        if key in flags:
            return flags[key]
    return None


def read_yaml_mapping(path, what: str = "file") -> dict:
    """Parse a YAML file that must hold a mapping; any problem is a ConfigError naming the file."""
    from pathlib import Path

    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e.__class__.__name__})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping")
    return data
