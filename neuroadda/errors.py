"""User-facing errors: the CLI prints these as one line and exits non-zero, never a traceback."""


class NeuroAddaError(Exception):
    """Bad input or configuration; the message names the file, key or field at fault."""


class InputError(NeuroAddaError):
    """A volume, file, key, shape or dtype that cannot be used."""


class ConfigError(NeuroAddaError):
    """A configuration file or field that does not validate."""


def format_validation_error(err, where: str) -> str:
    """One line for a pydantic ValidationError: ``WHERE: field 'a.b': message (+N more)``."""
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # a typo beats "missing"
    loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: field '{loc}': {first['msg']}{more}"


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
