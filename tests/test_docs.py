"""The documentation stays true: every public name documented, and what the pages show still holds.

Fast checks read the Markdown and the package without building the site: every name in
``trl_sft_kit.__all__`` has a docstring and a ``:::`` entry in the API reference; the legacy key table, the
packer list and the packing figures match the code and the benchmark; every YAML recipe on a page loads;
every example row on the formats page converts to what the page says. The ``pycon`` blocks of each page run
as doctests, and the site builds with ``mkdocs build --strict`` when mkdocs is installed (the ``docs``
extra).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import trl_sft_kit
from trl_sft_kit import SFTRecipe

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
REFERENCE = DOCS / "reference"
PAGES = sorted(DOCS.rglob("*.md"))

FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
DIRECTIVE = re.compile(r"^::: (?P<path>[\w.]+)[ \t]*$", re.MULTILINE)


def _fences(text: str, language: str) -> list[tuple[str, str]]:
    """``(info, body)`` of each fenced block in ``language``; ``json title="x"`` has info ``title="x"``."""
    blocks = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        if info.split(" ", 1)[0] == language:
            blocks.append((info[len(language) :].strip(), match["body"]))
    return blocks


def _public_names() -> list[str]:
    return [name for name in trl_sft_kit.__all__ if name != "__version__"]


def _reference_paths() -> set[str]:
    return {m["path"] for page in REFERENCE.glob("*.md") for m in DIRECTIVE.finditer(page.read_text("utf-8"))}


# ------------------------------------------------------------------------------------- API reference


@pytest.mark.parametrize("name", _public_names())
def test_every_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(trl_sft_kit, name)
    own = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    assert own and own.strip(), f"trl_sft_kit.{name} has no docstring of its own"
    if not isinstance(obj, type):
        return
    undocumented = []
    # the class's own members and those it inherits from the kit's classes (SFTRecipe's builder groups)
    kit_classes = [cls for cls in obj.__mro__ if cls.__module__.startswith("trl_sft_kit")]
    members = {name: member for cls in reversed(kit_classes) for name, member in vars(cls).items()}
    for attribute, member in members.items():
        if attribute.startswith("_"):
            continue
        function = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
        if (inspect.isfunction(function) or isinstance(function, property)) and not function.__doc__:
            undocumented.append(attribute)
    assert not undocumented, f"public members of trl_sft_kit.{name} without a docstring: {undocumented}"


def test_every_public_name_is_in_the_api_reference() -> None:
    documented = _reference_paths()
    missing = [name for name in _public_names() if f"trl_sft_kit.{name}" not in documented]
    assert not missing, f"add '::: trl_sft_kit.<name>' to a page in docs/reference/ for: {missing}"
    pages = "".join(page.read_text("utf-8") for page in REFERENCE.glob("*.md"))
    assert "trl_sft_kit.__version__" in pages


def test_every_api_reference_entry_names_something_that_exists() -> None:
    for path in sorted(_reference_paths()):
        parts = path.split(".")
        module_parts = parts[:]
        while module_parts:
            try:
                obj: Any = importlib.import_module(".".join(module_parts))
                break
            except ImportError:
                module_parts.pop()
        else:
            pytest.fail(f"{path}: no module to import")
        for attribute in parts[len(module_parts) :]:
            obj = getattr(obj, attribute, None)
            assert obj is not None, f"docs/reference names {path}, which does not exist"


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text("utf-8"))

    def pages(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [page for value in node.values() for page in pages(value)]
        return [page for item in node for page in pages(item)]

    listed = set(pages(config["nav"]))
    on_disk = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert on_disk == listed, f"not in nav: {on_disk - listed}; in nav but missing: {listed - on_disk}"


def test_readme_links_into_the_docs_resolve() -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    links = re.findall(r"\]\((docs/[^)#\s]+)", readme)
    assert links, "the README links into docs/"
    assert [link for link in links if not (REPO / link).is_file()] == []


# ------------------------------------------------------------------------------ pages match the code


def test_the_legacy_key_table_covers_every_legacy_key() -> None:
    from trl_sft_kit.config import LEGACY_KEYS

    page = (DOCS / "configs.md").read_text("utf-8")
    table = [line for line in page.splitlines() if line.startswith("| `")]
    in_table = {key for line in table for key in re.findall(r"`(\w+)`", line.split(" | ")[0])}
    assert sorted(set(LEGACY_KEYS) - in_table) == []


def test_every_built_in_packer_is_documented() -> None:
    from trl_sft_kit.packing.packers import BUILTIN_PACKERS

    page = (DOCS / "packing.md").read_text("utf-8")
    assert [p.name for p in BUILTIN_PACKERS if f"| `{p.name}`" not in page] == []


def test_the_packing_page_shows_the_measured_figures() -> None:
    benchmark = (REPO / "benchmarks" / "README.md").read_text("utf-8")
    figures = [line for line in benchmark.splitlines() if re.match(r"(lognormal|gamma|distribution) ", line)]
    assert len(figures) >= 17, "the benchmark README lost its results table"
    page = (DOCS / "packing.md").read_text("utf-8").splitlines()
    assert [line for line in figures if line not in page] == []


def _yaml_blocks() -> list[tuple[str, str]]:
    sources = [*PAGES, REPO / "README.md"]
    return [
        (f"{path.relative_to(REPO)} block {index}", body)
        for path in sources
        for index, (_, body) in enumerate(_fences(path.read_text("utf-8"), "yaml"))
    ]


@pytest.mark.parametrize(("where", "body"), _yaml_blocks(), ids=[where for where, _ in _yaml_blocks()])
def test_every_yaml_recipe_on_a_page_loads(where: str, body: str) -> None:
    recipe = SFTRecipe.from_dict(yaml.safe_load(body))
    assert recipe.dataset_spec is not None or recipe.model_spec is not None


TITLE = re.compile(
    r'^title="(?P<format>\w+): (?P<kind>a row|becomes(?: \((?P<chat>with|without) a chat template\))?)"$'
)


def _format_examples() -> list[tuple[str, dict[str, Any], bool | None, Any]]:
    """``(format, row, chat, expected)`` for every 'becomes' block of the formats page; chat None: both."""
    examples = []
    row: dict[str, Any] | None = None
    for info, body in _fences((DOCS / "formats.md").read_text("utf-8"), "json"):
        title = TITLE.match(info)
        if title is None:
            continue
        if title["kind"] == "a row":
            row = json.loads(body)
            continue
        assert row is not None, f"{info} comes before any row"
        chat = None if title["chat"] is None else title["chat"] == "with"
        examples.append((title["format"], row, chat, json.loads(body)))
    return examples


def test_every_built_in_format_has_an_example_row() -> None:
    from trl_sft_kit.formats.builtin import BUILTIN_FORMATS

    shown = {name for name, _, _, _ in _format_examples()}
    assert sorted(d.name for d in BUILTIN_FORMATS if d.name not in shown) == []


@pytest.mark.parametrize(
    ("name", "row", "chat", "expected"),
    _format_examples(),
    ids=[f"{name}-{index}" for index, (name, _, _, _) in enumerate(_format_examples())],
)
def test_format_example_rows_become_what_the_page_says(
    name: str, row: dict[str, Any], chat: bool | None, expected: Any
) -> None:
    from trl_sft_kit.formats import FormatOptions, get_format

    detector = get_format(name)
    assert detector.match(row, FormatOptions()), f"the {name} row on the page is not detected as {name}"
    for with_template in (True, False) if chat is None else (chat,):
        assert detector.convert(row, FormatOptions(chat=with_template)) == expected


# --------------------------------------------------------------------------------- examples that run


def _pages_with_doctests() -> list[Path]:
    return [page for page in PAGES if _fences(page.read_text("utf-8"), "pycon")]


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages_with_doctests(), ids=lambda page: page.relative_to(DOCS).as_posix())
def test_pycon_blocks_of_each_page_run(page: Path) -> None:
    """Each page's ``pycon`` blocks run in order as one doctest, as a reader would type them."""
    from trl_sft_kit.formats import format_names, unregister_format
    from trl_sft_kit.packing import packer_names, unregister_packer

    text = "\n\n".join(body for _, body in _fences(page.read_text("utf-8"), "pycon"))
    name = page.relative_to(REPO).as_posix()
    test = doctest.DocTestParser().get_doctest(text, {}, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    formats, packers = set(format_names()), set(packer_names())
    report: list[str] = []
    try:
        runner.run(test, out=report.append)
    finally:  # a page that registers plug-ins must not leave them behind for other tests
        for extra in set(format_names()) - formats:
            unregister_format(extra)
        for extra in set(packer_names()) - packers:
            unregister_packer(extra)
    assert runner.failures == 0, "".join(report)
    assert runner.tries > 0


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="the docs extra is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log
    assert "WARNING" not in log, log
    rendered = "".join(page.read_text("utf-8") for page in (site / "reference").rglob("*.html"))
    missing = [name for name in _public_names() if f'id="trl_sft_kit.{name}"' not in rendered]
    assert missing == [], f"not rendered in the API reference: {missing}"
