"""The declared dependencies are true: floors, ranges, extras and direct imports match what the kit uses."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
REQUIRED = {
    Requirement(line).name.lower().replace("_", "-"): Requirement(line) for line in PROJECT["dependencies"]
}
EXTRAS = {
    name: [Requirement(line) for line in lines] for name, lines in PROJECT["optional-dependencies"].items()
}
# import name -> distribution, for imports whose names differ
DISTRIBUTION = {"yaml": "pyyaml", "huggingface_hub": "huggingface-hub", "PIL": "pillow"}
OPTIONAL_IMPORTS = {"matplotlib", "hypothesis", "bitsandbytes", "kernels", "deepspeed", "rich", "tqdm"}


def floor(name: str) -> Version:
    spec = REQUIRED[name].specifier
    return min(Version(s.version) for s in spec if s.operator in (">=", "=="))


def test_floors_cover_what_the_kit_uses() -> None:
    assert floor("datasets") >= Version("4.7")  # datasets.List / datasets.Json, and TRL 1.16 itself
    # TRL refuses use_kernels=True on transformers 5.2 and 5.3 (they fail to load the Hub kernels)
    assert floor("transformers") >= Version("5.4")


def test_python_floor_is_what_transformers_requires() -> None:
    transformers_python = metadata.metadata("transformers")["Requires-Python"]
    wanted = min(Version(s.version) for s in SpecifierSet(transformers_python) if s.operator == ">=")
    ours = min(Version(s.version) for s in SpecifierSet(PROJECT["requires-python"]) if s.operator == ">=")
    assert (ours.major, ours.minor) == (wanted.major, wanted.minor), (PROJECT["requires-python"], wanted)


@pytest.mark.parametrize("version", ["2.13.0", "2.15.0"])
def test_the_torch_range_admits_the_pinned_and_the_current_release(version: str) -> None:
    assert REQUIRED["torch"].specifier.contains(version)


def test_matplotlib_is_optional_and_the_liger_extra_is_the_hub_kernels_route() -> None:
    assert "matplotlib" not in REQUIRED
    assert any(r.name == "matplotlib" for r in EXTRAS["plots"])
    liger = EXTRAS["liger"]
    assert not any(r.name == "liger-kernel" for r in liger)
    assert any(r.name in ("transformers", "trl") and "kernels" in r.extras for r in liger), liger
    assert any(r.name == "hypothesis" for r in EXTRAS["testing"])


def _imported_packages() -> set[str]:
    """Top-level third-party names the package imports, anywhere in its source."""
    names: set[str] = set()
    for path in (REPO / "trl_sft_kit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "trl_sft_kit"}


def test_every_package_imported_directly_is_declared() -> None:
    declared = set(REQUIRED) | {r.name for lines in EXTRAS.values() for r in lines}
    missing = {
        name
        for name in _imported_packages()
        if DISTRIBUTION.get(name, name).replace("_", "-") not in declared and name not in OPTIONAL_IMPORTS
    }
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
    for name in ("huggingface-hub", "pyarrow", "tokenizers"):
        assert name in REQUIRED


def test_strategies_without_hypothesis_say_what_to_install(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["hypothesis"] = None  # as if it were not installed
        from trl_sft_kit.errors import MissingDependencyError
        try:
            import trl_sft_kit.testing.strategies
        except MissingDependencyError as exc:
            print("ERROR", exc.package, exc.extra, exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ERROR hypothesis testing "), done.stdout
    assert "pip install 'trl-sft-kit[testing]'" in done.stdout


def test_nox_runs_the_lowest_trl_and_installs_the_example_plugin() -> None:
    source = (REPO / "noxfile.py").read_text(encoding="utf-8")
    sys.path.insert(0, str(REPO))
    try:
        import noxfile
    finally:
        sys.path.remove(str(REPO))
    assert noxfile.lowest("trl") == f"trl=={floor('trl')}"
    assert (REPO / noxfile.FORMAT_PLUGIN / "pyproject.toml").is_file()
    assert '"--no-deps", "-e", FORMAT_PLUGIN' in source and "def tests_lowest_trl" in source
