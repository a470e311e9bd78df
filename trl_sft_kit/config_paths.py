"""Relative paths in a recipe file are read from the file's folder, as users of config files expect.

A recipe held in memory reads relative paths from the working directory. ``from_yaml(path)`` therefore
rebases every relative path the file holds (model, tokenizer, data, evaluation data, chat template,
``output_dir``) from the file's folder onto the working directory, and ``to_yaml(path)`` does the reverse,
so a written ``recipe.yaml`` (the one saved next to an adapter included) keeps working wherever it is
read from, and moves with the folders it names.

A value is taken for a path when it is one on disk, seen from the folder it is read from, or cannot be a
hub id (``./data``, ``data.jsonl``, ``C:\\data``); ``org/name`` that is not on disk stays a hub id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["read_recipe_file", "rebase_paths"]

_FLAT_PATH_KEYS = ("model_name_or_path", "dataset_name_or_path", "chat_template_path")


def rebase_paths(
    data: Mapping[str, Any],
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    outside: str = "relative",
) -> dict[str, Any]:
    """A copy of a recipe config whose relative paths, read from ``source``, are rewritten for ``target``.

    ``outside="absolute"`` writes a path that would climb out of ``target`` (``../..``) as an absolute
    one. Returns ``data`` unchanged (as a new dict) when both folders are the same.
    """
    result = dict(data)
    src, dst = Path(source).resolve(), Path(target).resolve()
    if src == dst:
        return result
    stages = result.get("stage_configs")
    if isinstance(stages, Mapping):
        result["stage_configs"] = {
            name: rebase_paths(stage, src, dst, outside=outside) if isinstance(stage, Mapping) else stage
            for name, stage in stages.items()
        }

    def move(value: Any, *, always: bool = False) -> Any:
        if not isinstance(value, str) or not value or os.path.isabs(os.path.expanduser(value)):
            return value
        if value.startswith("~") or not (always or _is_path(value, src)):
            return value
        moved = os.path.relpath(src / value, dst)
        if outside == "absolute" and moved.split(os.sep)[0] == os.pardir:
            return os.path.normpath(src / value)
        return moved

    def section(key: str, *names: str) -> None:
        value = result.get(key)
        if isinstance(value, str) and key in ("model", "dataset"):
            result[key] = move(value)
        elif isinstance(value, Mapping):
            result[key] = {k: move(v) if k in names else v for k, v in value.items()}

    section("model", "source", "name_or_path", "tokenizer")
    datasets = result.get("dataset")
    if isinstance(datasets, list):
        result["dataset"] = [
            move(item) if isinstance(item, str) else _moved(item, move, ("source", "eval"))
            for item in datasets
        ]
    else:
        section("dataset", "source", "eval")
    if isinstance(result.get("chat_template"), str):
        result["chat_template"] = move(result["chat_template"])
    for key in _FLAT_PATH_KEYS:
        if key in result:
            result[key] = move(result[key])
    if "output_dir" in result:
        result["output_dir"] = move(result["output_dir"], always=True)
    training = result.get("training")
    if isinstance(training, Mapping) and "output_dir" in training:
        result["training"] = {**training, "output_dir": move(training["output_dir"], always=True)}
    return result


def _moved(item: Any, move: Any, names: tuple[str, ...]) -> Any:
    if not isinstance(item, Mapping):
        return item
    return {key: move(value) if key in names else value for key, value in item.items()}


def _is_path(value: str, folder: Path) -> bool:
    from trl_sft_kit.data.sources import is_hub_id

    if (folder / value).exists():
        return True
    if value.startswith((".", "/")) or "\\" in value:
        return True
    return not is_hub_id(value) or value.lower().endswith(
        (".jsonl", ".json", ".csv", ".parquet", ".txt", ".jinja")
    )


def read_recipe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A recipe file's settings, its relative paths rebased onto the working directory (``load_yaml``)."""
    from trl_sft_kit.config import load_yaml

    return rebase_paths(load_yaml(Path(path)), Path(path).parent, os.getcwd())
