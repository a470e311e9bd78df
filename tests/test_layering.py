"""The lower layers never reach up: no module of ``data/``, ``formats/`` or ``packing/`` imports the recipe.

The rule (``docs/architecture.md``): those packages take plain values (dataset specs, loss, lengths, packing),
so none of their modules may import ``recipe``, ``compile``, ``config``, ``cli`` or ``inspection`` (or a
submodule of one) — not at module level, not inside a function, not under ``if TYPE_CHECKING:``. Each source
file is parsed with ``ast``, so every ``import`` statement counts wherever it stands, relative imports are
resolved, and ``importlib.import_module("trl_sft_kit....")`` with a literal name counts too. The package root
``trl_sft_kit`` re-exports the recipe, so importing it (``from trl_sft_kit import SFTRecipe``) counts as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "trl_sft_kit"
LOWER_LAYERS = ("data", "formats", "packing")
UPPER_MODULES = tuple(f"trl_sft_kit.{name}" for name in ("recipe", "compile", "config", "cli", "inspection"))

# Files that still break the rule, each with the step that will fix it. strict=True: once a file is fixed the
# test passes, the xfail fails, and its entry here must go.
KNOWN_BREACHES: dict[str, str] = {}


def module_name(path: Path) -> str:
    """Dotted name of a source file below ``trl_sft_kit/`` (``trl_sft_kit.data.cache``)."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module a source file imports, anywhere in it, as ``(line, dotted name)``.

    ``from P import X`` gives both ``P`` and ``P.X`` (``X`` may be a submodule); relative imports are resolved
    against ``module`` (a package's ``__init__`` when ``is_package``).
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                parent = ".".join([*base, *([node.module] if node.module else [])])
            else:
                parent = node.module or ""
            found.append((node.lineno, parent))
            found += [(node.lineno, f"{parent}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _is_upper(name: str) -> bool:
    return any(name == up or name.startswith(up + ".") for up in UPPER_MODULES)


def upper_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """The imports in ``source`` that break the layering rule, as ``"line N: name"``, one per name imported.

    ``from trl_sft_kit.recipe import SFTRecipe`` is one breach (``trl_sft_kit.recipe``), not two.
    """
    found = imported_modules(source, module, is_package=is_package)
    breaches = {
        (line, name)
        for line, name in found
        if (name == "trl_sft_kit" or _is_upper(name))
        and not any(
            other == line and _is_upper(parent) and name.startswith(parent + ".") for other, parent in found
        )
    }
    return [f"line {line}: {name}" for line, name in sorted(breaches)]


def lower_layer_files() -> list[str]:
    return sorted(
        path.relative_to(PACKAGE_DIR).as_posix()
        for layer in LOWER_LAYERS
        for path in (PACKAGE_DIR / layer).rglob("*.py")
    )


def _params() -> list[object]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BREACHES[name]))
        if name in KNOWN_BREACHES
        else name
        for name in lower_layer_files()
    ]


@pytest.mark.parametrize("relative", _params())
def test_lower_layers_do_not_import_the_recipe_or_what_sits_on_it(relative: str) -> None:
    path = PACKAGE_DIR / relative
    breaches = upper_imports(
        path.read_text(encoding="utf-8"), module_name(path), is_package=path.name == "__init__.py"
    )
    assert not breaches, f"trl_sft_kit/{relative} imports an upper layer: {'; '.join(breaches)}"


def test_the_rule_covers_every_lower_layer_and_each_known_breach_is_a_real_file() -> None:
    files = lower_layer_files()
    for layer in LOWER_LAYERS:
        assert f"{layer}/__init__.py" in files
    assert set(KNOWN_BREACHES) <= set(files), "a known breach names a file that no longer exists: drop it"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import trl_sft_kit.recipe\n", ["line 1: trl_sft_kit.recipe"]),
        ("from trl_sft_kit.compile import compile_recipe\n", ["line 1: trl_sft_kit.compile"]),
        ("from trl_sft_kit import config\n", ["line 1: trl_sft_kit", "line 1: trl_sft_kit.config"]),
        ("from trl_sft_kit import SFTRecipe\n", ["line 1: trl_sft_kit"]),
        ("from trl_sft_kit.inspection.html import render\n", ["line 1: trl_sft_kit.inspection.html"]),
        ("def f():\n    from trl_sft_kit.cli import main\n", ["line 2: trl_sft_kit.cli"]),
        (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from trl_sft_kit.recipe import SFTRecipe\n",
            ["line 3: trl_sft_kit.recipe"],
        ),
        ("from ..recipe import SFTRecipe\n", ["line 1: trl_sft_kit.recipe"]),
        ("from .. import inspection\n", ["line 1: trl_sft_kit", "line 1: trl_sft_kit.inspection"]),
        ("import importlib\nimportlib.import_module('trl_sft_kit.config')\n", ["line 2: trl_sft_kit.config"]),
        ("from trl_sft_kit.specs import DatasetSpec\nfrom trl_sft_kit.formats import detect_format\n", []),
        ("from .tokenize import tokenize\nimport trl_sft_kit.recipes_of_my_own\n", []),
    ],
)
def test_the_checker_finds_every_kind_of_upper_import(source: str, expected: list[str]) -> None:
    assert upper_imports(source, "trl_sft_kit.data.example") == expected


def test_relative_imports_resolve_from_a_package_init() -> None:
    assert upper_imports("from ..recipe import SFTRecipe\n", "trl_sft_kit.data", is_package=True) == [
        "line 1: trl_sft_kit.recipe"
    ]
    assert upper_imports("from .recipe import SFTRecipe\n", "trl_sft_kit.data", is_package=True) == []


def test_no_module_of_the_data_layer_names_the_recipe_class() -> None:
    """The data stage takes ``DataSettings``: no code of ``data/`` names ``SFTRecipe``, even for typing."""
    import ast

    for path in (PACKAGE_DIR / "data").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        names |= {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
        }
        strings = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        assert "SFTRecipe" not in names, path
        assert not any("SFTRecipe" in text for text in strings), f"{path}: a string names SFTRecipe"
