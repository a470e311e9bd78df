"""Before anything loads: the packages training and the recipe need are installed and import (each missing
one named with the requirement the kit declares and the extra that brings it), and ``liger()`` has a CUDA
GPU."""

from __future__ import annotations

import importlib.util
import re
from typing import TYPE_CHECKING

from trl_sft_kit.errors import BackendError, MissingDependencyError, RecipeError

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe

__all__: list[str] = []


def _requirement(package: str) -> str:
    """The requirement trl-sft-kit declares for ``package`` (``'trl<2,>=1.10'``), else the bare name."""
    from importlib import metadata

    try:
        declared = metadata.requires("trl-sft-kit") or []
    except metadata.PackageNotFoundError:
        declared = []
    wanted = re.sub(r"[-_.]+", "-", package).lower()
    for line in declared:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if ";" not in line and name and re.sub(r"[-_.]+", "-", name.group(1)).lower() == wanted:
            return line.strip()
    return package


def _require(
    module: str,
    *,
    package: str,
    extra: str | None = None,
    why: str = "training",
    drop: str | None = None,
) -> None:
    """Raise ``MissingDependencyError`` with the fix unless ``module`` is installed; imports nothing.

    Args:
        module: the import name (``bitsandbytes``).
        package: the distribution that provides it (``bitsandbytes``).
        extra: the trl-sft-kit extra that installs it, for an optional package.
        why: what needs it, to start the message (``"quantize()"``).
        drop: the setting that asked for an optional package, named as the other way out.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a module left without a spec
        found = False
    if found:
        return
    if extra is not None:
        fix = f"Install it with pip install 'trl-sft-kit[{extra}]'" + (f", or drop {drop}." if drop else ".")
    else:
        fix = (
            f"Install it with pip install '{_requirement(package)}' (trl-sft-kit depends on it, so "
            "reinstalling trl-sft-kit brings it back too)."
        )
    raise MissingDependencyError(
        f"{why} needs the {package!r} package, which is not installed. {fix}", package=package, extra=extra
    )


def _import_backend(recipe: SFTRecipe | None = None) -> None:
    """Check that training can start, before any tokenizer, data or model is loaded.

    First, without importing anything, that every package training needs is installed, and the optional
    ones the recipe asks for (bitsandbytes for ``quantize()``, kernels for ``liger()``, whose hub kernels
    download at model load, so ``liger()`` offline is refused here); then that the required ones import, in
    dependency order, so that a broken install is named with its fix instead of surfacing as a traceback
    from deep inside TRL; last, that ``liger()`` has a CUDA GPU.

    Raises:
        MissingDependencyError: a package is not installed; the message names what to install (and, for an
            optional one, the setting to drop instead).
        BackendError: a package is installed but fails to import; the message says how to reinstall it.
        RecipeError: ``liger()`` offline (``HF_HUB_OFFLINE``) or on a machine without a CUDA GPU.
    """
    needed = (  # (import name, distribution, attributes that lazy modules only import on first use)
        ("torch", "torch", ()),
        ("transformers", "transformers", ("AutoModelForCausalLM", "AutoTokenizer")),
        ("accelerate", "accelerate", ()),
        ("peft", "peft", ("LoraConfig",)),
        ("datasets", "datasets", ("Dataset",)),
        ("trl", "trl", ("SFTConfig", "SFTTrainer")),
    )
    for module, package, _ in needed:
        _require(module, package=package)
    if recipe is not None and recipe.quantization_spec is not None:
        _require(
            "bitsandbytes",
            package="bitsandbytes",
            extra="quantization",
            why="quantize()",
            drop=".quantize() from the recipe (use_4bit / use_8bit: false in a flat config)",
        )
    if recipe is not None and recipe.liger_enabled:
        # The hub kernels route (use_kernels=True) needs only `kernels`; the kernels themselves are
        # downloaded from the Hub when the model loads, so offline there is nothing to load them from.
        _require(
            "kernels",
            package="kernels",
            extra="liger",
            why="liger()",
            drop=".liger() from the recipe (use_liger_kernel: false in a flat config)",
        )
        from trl_sft_kit.export import hub_offline

        if hub_offline():
            raise RecipeError(
                "liger() loads its kernels from the Hugging Face Hub when the model loads, but offline mode "
                "is on (HF_HUB_OFFLINE=1). Unset HF_HUB_OFFLINE so the kernels can be downloaded (once; "
                "they are cached), or drop .liger() from the recipe (use_liger_kernel: false in a flat "
                "config)."
            )
    for module, package, attributes in needed:
        try:
            imported = importlib.import_module(module)
            for attribute in attributes:
                getattr(imported, attribute)
        except Exception as exc:
            from importlib import metadata

            try:
                installed = f" (installed: {package} {metadata.version(package)})"
            except Exception:
                installed = ""
            raise BackendError(
                f"{package} is installed{installed} but fails to import: {type(exc).__name__}: {exc}. "
                f"Reinstall it with pip install --force-reinstall '{_requirement(package)}'."
            ) from exc
    if recipe is not None and recipe.liger_enabled:
        import torch

        if not torch.cuda.is_available():
            raise RecipeError(
                "liger() needs a CUDA GPU: Liger's Triton kernels do not run on this machine's CPU. Drop "
                ".liger() from the recipe (use_liger_kernel: false in a flat config), or train on a GPU "
                "machine."
            )
