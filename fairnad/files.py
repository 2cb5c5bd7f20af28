"""Reading user files with errors that name the file, the line and what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fairnad.errors import ConfigError, one_line

MAX_YAML_VALUES = 200_000  # a config, template or space file is small; aliases must not expand without end


def read_yaml(path: str | Path, what: str = "file") -> Any:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a YAML {what}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file, expected YAML") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({yaml_problem(err)})") from None
    except (ValueError, OverflowError, RecursionError) as err:
        raise yaml_value_error(path, err) from None
    check_yaml_values(data, path)
    return data


def yaml_problem(err: Exception) -> str:
    """PyYAML's reason in one line (its full text spans several, with the position repeated)."""
    return one_line(" ".join(str(getattr(err, "problem", None) or err).split()), 160)


def yaml_value_error(path: str | Path, err: BaseException) -> ConfigError:
    """What PyYAML raises past its own errors: a value it cannot build, or nesting past Python's stack."""
    if isinstance(err, RecursionError):
        return ConfigError(f"{path}: nested too deeply to be read as YAML")
    # e.g. a date that does not exist (2021-13-45) or a number with thousands of digits
    return ConfigError(f"{path}: a value cannot be read ({one_line(' '.join(str(err).split()), 120)}); quote it if it is text")


def check_yaml_values(data: Any, path: str | Path) -> None:
    """Refuse YAML whose aliases make a structure contain itself, or expand to an enormous one:
    both would hang or crash whatever reads the settings later."""
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    seen = 0
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        if not isinstance(node, (dict, list)):
            continue
        if id(node) in on_path:
            raise ConfigError(f"{path}: a YAML alias (*name) refers to a value that contains it; the settings would never end")
        seen += len(node)
        if seen > MAX_YAML_VALUES:
            raise ConfigError(f"{path}: expands to more than {MAX_YAML_VALUES:,} values (through YAML aliases); too large")
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in (node.values() if isinstance(node, dict) else node))
