"""Recipe configs as YAML: read from a file or text (``load_yaml``, with the kit's safe reader), written back
(``dump_yaml``), and whether ``from_yaml``'s argument names a file (``names_file``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trl_sft_kit.errors import ConfigError


def dump_yaml(data: Mapping[str, Any]) -> str:
    """YAML text for plain data, keys in the order given; ``load_yaml`` reads back exactly ``data``.

    Non-ASCII text is written as it is, except when a string holds U+0085 (NEL): PyYAML writes that raw
    and reads it back as a line break, so then every non-ASCII character is escaped instead.

    Raises:
        ConfigError: a value YAML cannot hold (an object rather than strings, numbers, lists and dicts).
    """
    import yaml

    try:
        text = str(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True))
        if "\x85" in text:
            text = str(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=False))
        return text
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"the recipe holds a value YAML cannot write ({exc}); give plain strings, numbers, lists and "
            "dicts."
        ) from None


def names_file(text: str) -> bool:
    """Whether ``from_yaml``'s argument names a file: one line that is a file or holds no ``key: value``."""
    if "\n" in text or not text.strip():
        return False
    try:
        if Path(text).is_file():
            return True
    except (OSError, ValueError):
        return False
    return re.search(r":(\s|$)", text) is None


def load_yaml(path_or_text: str | os.PathLike[str]) -> dict[str, Any]:
    """Read YAML from a file path or from text.

    A ``PathLike``, or a one-line string that is an existing file or holds no ``key: value``, is a path
    (so ``C:\\configs\\sft.yaml`` is one); anything else is YAML text.

    The YAML is read as ``yaml.safe_load`` reads it, except that a key given twice in one mapping, aliases
    that expand past 10,000 values and nesting deeper than 100 levels are refused (``trl_sft_kit.yaml_safe``).

    Raises:
        ConfigError: the file is missing, the YAML is malformed (with its line), it is not a mapping, or it
            holds a duplicate key, an alias bomb or too deep nesting (each with its line).
    """
    import yaml

    from trl_sft_kit.yaml_safe import load_yaml_text

    text: str
    name, path = "YAML text", None
    if isinstance(path_or_text, os.PathLike) or names_file(str(path_or_text)):
        file = Path(path_or_text)
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist.", path=str(file))
        name = path = str(file)
        try:
            text = file.read_text(encoding="utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            line = file.read_bytes()[: exc.start].count(b"\n") + 1
            raise ConfigError(
                f"{name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); "
                "save it as UTF-8.",
                path=name,
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {name}: {exc.strerror or exc}.", path=name) from None
    else:
        text = str(path_or_text)
    try:
        data = load_yaml_text(text, source=name, path=path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{name} is not valid YAML{where}: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must hold a mapping of settings (got {type(data).__name__}).", path=path)
    return data
