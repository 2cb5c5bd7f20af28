"""Reading user files with errors that name the file, the line and what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fairnad.errors import ConfigError


def read_yaml(path: str | Path, what: str = "file") -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a YAML {what}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file, expected YAML") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(err, 'problem', None) or err})") from None
