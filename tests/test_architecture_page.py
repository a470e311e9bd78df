"""``docs/architecture.md`` matches the tree: every module of the package is named on the page.

A module counts as named when the page has it in backticks by its path below ``trl_sft_kit/``
(``data/cache.py``), by a shorter tail of that path (``masks/labels.py`` in the ``data/masks/`` table), or
by its file name in a table row that names its package (``| `inspection/text.py`, `terminal.py` |``,
``testing/``'s row listing ``sample_data``). Package ``__init__`` and ``__main__`` files go with their
package, which must be named. A module written later without its row fails here, naming it.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "trl_sft_kit"
PAGE = PACKAGE.parent / "docs" / "architecture.md"


def _named(relative: str, page: str, rows: list[str]) -> bool:
    parts = relative.split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    if any(f"`{tail}`" in page for tail in tails[:-1]):  # a path, or a shorter tail of it
        return True
    package, stem = "/".join(parts[:-1]), Path(parts[-1]).stem
    if not package:
        return f"`{parts[-1]}`" in page
    inner = parts[-2]
    return any(
        (f"`{package}/" in row or f"`{inner}/" in row) and re.search(rf"`{re.escape(stem)}(\.py)?`", row)
        for row in rows
    )


def test_every_module_has_its_row_on_the_architecture_page() -> None:
    page = PAGE.read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("|")]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if path.name in ("__init__.py", "__main__.py"):
            package = path.parent.relative_to(PACKAGE).as_posix()
            if package != "." and f"`{package}/`" not in page and f"`{package.split('/')[-1]}/`" not in page:
                missing.append(f"{package}/ (the package)")
            continue
        if not _named(relative, page, rows):
            missing.append(relative)
    assert not missing, f"docs/architecture.md names no row for: {missing}"
