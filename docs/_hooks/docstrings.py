"""MkDocs hook: render the docstrings' reST-isms and doctest examples as Markdown would mean them.

mkdocstrings renders docstrings as Markdown, with the extensions the site uses. Three habits of Python
docstrings read wrongly there, so this hook adds a Markdown preprocessor (for the pages and the docstrings
alike) that rewrites them, outside fenced code blocks only:

- A doctest example (``>>> recipe.lora_spec.r``), bare or under ``Example:``: Markdown reads a line starting
  with ``>`` as a block quote, so ``>>>`` became three nested quotes with the lines run together. Each
  doctest block, from its first ``>>>`` line to the next blank line (as doctest reads it), is fenced as
  ``pycon``.
- A Sphinx role (``:func:`tokenize_conversation```, ``:class:`~trl_sft_kit.errors.DatasetError```) became
  literal text; it is written as inline code (``~`` keeps the last part of the name, as Sphinx shows it).
- A paragraph ending in ``::`` (reST's marker before a literal block) kept both colons; it keeps one. The
  indented block after it is a Markdown code block already.
"""

from __future__ import annotations

import re
from typing import Any

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
PROMPT = re.compile(r"^(?P<indent>\s*)>>>(\s|$)")
ROLE = re.compile(r":(?:class|func|meth|attr|data|const|exc|mod|obj):`(?P<tilde>~?)(?P<name>[^`]+)`")
LITERAL_MARKER = re.compile(r"(?<=\w)::[ \t]*$")


def _role(match: re.Match[str]) -> str:
    name = match["name"]
    return f"`{name.rsplit('.', 1)[-1] if match['tilde'] else name}`"


class DocstringMarkup(Preprocessor):
    """Fence doctest blocks, turn Sphinx roles into code, and drop reST's literal-block ``::``."""

    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        fence: str | None = None
        index = 0
        while index < len(lines):
            line = lines[index]
            opened = FENCE.match(line)
            if fence is not None:
                if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                    fence = None
                out.append(line)
                index += 1
                continue
            if opened:
                fence = opened.group(1)
                out.append(line)
                index += 1
                continue
            prompt = PROMPT.match(line)
            if prompt is None:
                out.append(LITERAL_MARKER.sub(":", ROLE.sub(_role, line)))
                index += 1
                continue
            indent = prompt["indent"]
            block = []
            while index < len(lines) and lines[index].strip():
                block.append(lines[index])
                index += 1
            out += ["", f"{indent}```pycon", *block, f"{indent}```", ""]
        return out


class DocstringMarkupExtension(Extension):
    """Registers ``DocstringMarkup`` after the snippets and before the fenced-code preprocessors."""

    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 - Markdown's own name
        md.preprocessors.register(DocstringMarkup(md), "docstring_markup", 31.5)


@event_priority(100)  # before mkdocstrings reads the extension list
def on_config(config: Any) -> Any:
    config.markdown_extensions.append(DocstringMarkupExtension())
    return config
