"""The config file: TOML, ``[pica]`` table or top level, keys flat or in their group's table
(``[pica.llm]``); :func:`make_settings` merges CLI values over it over the defaults. Re-exported by
:mod:`pica.config`."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pica.config import CONFIG_FILE_NAME, ENV_CONFIG, FIELDS, GROUP_DOCS, GROUPS, Settings
from pica.errors import InputError, did_you_mean

__all__ = ["flatten_groups", "load_config_file", "make_settings", "parse_weights"]


def load_config_file(path: Path | None) -> dict[str, Any]:
    """Read a TOML config file (``[pica]`` table or top level). Missing default file = ``{}``.

    Keys are Settings field names, flat (``shots = 8``) or in their group's table
    (``[pica.llm]`` with ``n_ctx = 4096``; :data:`GROUPS`); both shapes may be mixed.

    Args:
        path: An explicit file (must exist), or ``None`` to use ``$PICA_CONFIG`` or ``./pica.toml``.

    Raises:
        InputError: The file is missing (when explicit), not TOML, or has unknown keys.
    """
    explicit = path is not None or ENV_CONFIG in os.environ
    path = Path(path or os.environ.get(ENV_CONFIG) or CONFIG_FILE_NAME)
    if not path.is_file():
        if explicit:
            raise InputError(f"config file not found: {path}")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"config file {path} is not valid TOML: {e}") from e
    data = flatten_groups(data.get("pica", data), path)
    unknown = set(data) - FIELDS
    if unknown:
        bad = sorted(unknown)[0]
        raise InputError(f"config file {path}: unknown key '{bad}';{did_you_mean(bad, FIELDS)}")
    return data


def flatten_groups(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Config-file keys with the group tables (``[pica.llm]`` ...) merged into the flat keys.

    Raises:
        InputError: a table key that is not in its group, or a key given twice.
    """
    flat = {k: v for k, v in data.items() if not (k in GROUPS and isinstance(v, dict))}
    for group, table in data.items():
        if group not in flat:
            for key, value in table.items():
                if key not in GROUPS[group]:
                    raise InputError(f"config file {path}: [{group}] has no key '{key}';"
                                     f"{did_you_mean(key, GROUPS[group])} it holds {GROUP_DOCS[group]}:"
                                     f" {', '.join(GROUPS[group])}")
                if key in flat:
                    raise InputError(f"config file {path}: '{key}' is given twice (flat and in [{group}])")
                flat[key] = value
    return flat


def make_settings(cli: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Merge CLI values (``None`` = not given) over the config file over the defaults.

    Raises:
        InputError: Bad config file or out-of-range value.
    """
    merged: dict[str, Any] = load_config_file(config_file)
    merged.update({k: v for k, v in cli.items() if v is not None})
    return Settings(**merged).validate()


def parse_weights(text: str | None) -> dict[str, float] | None:
    """Parse ``"question=1,caption=0.5"`` into a dict. ``None`` stays ``None``.

    Raises:
        InputError: The text is not ``kind=number`` pairs.
    """
    if text is None:
        return None
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, value = part.partition("=")
        try:
            weights[kind.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InputError(f"--weights expects kind=number pairs like 'question=1,image=1', got '{part}'")
    return weights
