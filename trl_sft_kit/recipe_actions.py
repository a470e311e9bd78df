"""What a recipe does: check itself, explain, inspect its data, compile, train, and round-trip to files.

``RecipeActions`` holds the methods ``SFTRecipe`` inherits that hand the recipe to the stage doing the work
(``recipe_checks``, ``plan``, ``inspection``, ``compile``, ``config``); each imports that stage when called,
so building a recipe stays light. It has no fields of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from typing import Self

    from trl_sft_kit.compile import Compiled
    from trl_sft_kit.inspection import InspectReport
    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.result import TrainResult
    from trl_sft_kit.specs import DatasetSpec

__all__ = ["RecipeActions"]


class RecipeActions:
    """The checking, running and file methods of ``SFTRecipe``; see ``SFTRecipe``."""

    if TYPE_CHECKING:

        @property
        def dataset_specs(self) -> tuple[DatasetSpec, ...]: ...

    __slots__ = ()

    def _recipe(self) -> SFTRecipe:
        """This object as the ``SFTRecipe`` it is (the class is only ever a base of ``SFTRecipe``)."""
        return cast("SFTRecipe", self)

    def validate(self, *, sources: bool = True) -> Self:
        """Check the whole recipe and return it unchanged, or raise one ``RecipeError`` naming every problem.

        Runs before anything heavy loads. Data is only looked at when it is cheap: a plain-text source
        (``.txt`` or ``format="text"``) is known to be text without reading it. Every local dataset path
        must exist, and a hub dataset id must be in the local cache when offline mode is on; ``sources=False``
        leaves that out (for a recipe written before its data). The full list is in ``docs/concepts.md``.

        Raises:
            RecipeError: with ``problems``, one sentence per conflict and the way out.
            DataSourceError: the only problems are dataset paths that cannot be found (``path`` names the
                first).
        """
        from trl_sft_kit.recipe_checks import check_recipe

        check_recipe(self._recipe(), sources=sources)
        return self

    def explain(self, *, deep: bool = False) -> str:
        """Text of the resolved plan: model, each source's format and why, the loss in words, packing and
        lengths, adapters, and the SFTConfig fields that matter.

        Loads nothing heavy: formats are detected on small files and in-memory rows only, without a
        tokenizer. ``deep=True`` adds ``inspect()``'s full count (loads the tokenizer, prepares the data).
        """
        from trl_sft_kit.plan import explain_recipe

        return explain_recipe(self._recipe(), deep=deep)

    def inspect(self, rows: int = 5) -> InspectReport:
        """What training will see, before it starts: format, rendered rows, loss tokens, lengths, packing.

        Runs the data stage ``compile()`` runs with the recipe's tokenizer and chat template; loads no model.
        The report prints in colour (``report.print()``), shows as HTML in a notebook, reads as plain text
        with ``[[`` ``]]`` around the tokens that carry loss (``str(report)``), and converts to plain data
        (``report.to_dict()``, ``report.to_json()``).

        Args:
            rows: how many rows to render with their loss tokens marked (the first ones).

        Raises:
            RecipeError: the recipe is inconsistent, or inconsistent with its data.
            DatasetError: the data cannot be read or converted (file, row and field named).
            BackendError: the tokenizer cannot be loaded.
        """
        from trl_sft_kit.inspection import inspect_recipe

        return inspect_recipe(self._recipe(), rows)

    # ---------------------------------------------------------------------------------- running

    def compile(self) -> Compiled:
        """Validate, then build the real ``SFTConfig`` and a ready ``SFTTrainer`` (model loaded, PEFT on).

        Returns:
            ``Compiled`` with ``.config``, ``.trainer``, ``.report`` and ``.recipe``.
        """
        from trl_sft_kit.compile import compile_recipe

        return compile_recipe(self._recipe())

    def train(self, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
        """Compile and train; return the metrics, the losses and where the adapter or model was saved.

        An ``output_dir`` that already holds files is refused before anything loads, unless ``resume=True``
        (continue from its last checkpoint, with the same data order) or ``overwrite=True`` (delete what a
        previous run left there and start again). See ``Compiled.train``.

        Raises:
            OutputExistsError: the folder holds files and neither flag is set; or it is, or holds, the base
                model's folder, or holds or lies inside the data.
            RunError: another live run holds the folder's lock.
            ResumeError: ``resume=True`` and no complete checkpoint, or one of other data, another seed or
                other recipe fields.
        """
        from trl_sft_kit.compile import config_kwargs, resolve_model
        from trl_sft_kit.runs import check_output_dir, guarded_paths

        model, data = guarded_paths(resolve_model(self._recipe())[0], self.dataset_specs)
        output_dir = config_kwargs(self._recipe())["output_dir"]
        check_output_dir(output_dir, resume=resume, overwrite=overwrite, model=model, data=data)
        return self.compile().train(resume=resume, overwrite=overwrite)

    # ---------------------------------------------------------------------------------- files

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data; ``SFTRecipe.from_dict(r.to_dict()) == r``.

        Raises:
            ConfigError: the recipe holds a loaded model or a ``datasets.Dataset``, which cannot be written.
        """
        from trl_sft_kit.config import recipe_to_dict

        return recipe_to_dict(self._recipe())

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The recipe as YAML text, also written to ``path`` when given.

        Written to a file, relative paths are written relative to the file's folder, which is where
        ``from_yaml`` reads them from.
        """
        from trl_sft_kit.config import dump_yaml

        if path is None:
            return dump_yaml(self.to_dict())
        from trl_sft_kit.config_paths import rebase_paths

        text = dump_yaml(rebase_paths(self.to_dict(), os.getcwd(), Path(path).parent))
        Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SFTRecipe:
        """Build a recipe from ``to_dict()`` output, or from a flat SFT-stage config (legacy keys).

        A legacy config may also be nested as ``stage_configs: {trl_sft: {...}}``.

        Raises:
            ConfigError: an unknown key (with the closest known key) or a value of the wrong type.
        """
        from trl_sft_kit.config import recipe_from_dict

        return recipe_from_dict(data)

    @classmethod
    def from_yaml(cls, path_or_text: str | os.PathLike[str]) -> SFTRecipe:
        """Build a recipe from a YAML file, or from YAML text (anything containing a newline or ``:``).

        Relative paths in a file (data, model, chat template, ``output_dir``) are read from the file's
        folder; in YAML text, from the working directory.

        Raises:
            ConfigError: every problem the file has, numbered, in one error.
        """
        from trl_sft_kit.config import load_yaml, names_file
        from trl_sft_kit.errors import ConfigError

        data = load_yaml(path_or_text)
        is_file = isinstance(path_or_text, os.PathLike) or names_file(str(path_or_text))
        if is_file:
            from trl_sft_kit.config_paths import rebase_paths

            data = rebase_paths(data, Path(path_or_text).parent, os.getcwd(), outside="absolute")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            if exc.path is not None or not is_file:
                raise
            path = os.fspath(path_or_text)
            raise ConfigError(f"{path}: {exc}", key=exc.key, path=path, problems=exc.problems) from None
