"""Developer sessions: ``nox -s tests``, ``nox -s tests_lowest_trl``, ``nox -s lint``, ``nox -s docs``."""

from __future__ import annotations

import re

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

TORCH = "torch==2.13.0"  # the CPU wheel; install it before the project so no CUDA build is pulled
FORMAT_PLUGIN = "examples/format_plugin"  # the example plug-in; tests/test_formats_e2e.py skips without it


def lowest(package: str) -> str:
    """``package==X`` for the floor the pyproject's requirement on ``package`` admits (``trl>=1.10,<2``)."""
    for requirement in nox.project.load_toml("pyproject.toml")["project"]["dependencies"]:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        floor = re.search(r">=\s*([^,;\s]+)", requirement)
        if name and name.group(1).lower() == package and floor:
            return f"{package}=={floor.group(1)}"
    raise ValueError(f"pyproject.toml declares no floor for {package!r}")


def install_project(session: nox.Session, *pins: str) -> None:
    """torch's CPU wheel, the project with its dev extra (and ``pins``), and the example format plug-in."""
    session.install(TORCH)
    session.install("-e", ".[dev]", *pins)
    # --no-deps: it depends on trl-sft-kit, which must stay this checkout rather than come from an index
    session.install("--no-deps", "-e", FORMAT_PLUGIN)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite (tiny offline models, CPU only), the example plug-in's tests included."""
    install_project(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def tests_lowest_trl(session: nox.Session) -> None:
    """Run the test suite at the lowest TRL the pyproject admits (``trl_sft_kit.sft_fields`` then reads
    SFTConfig's fields live instead of its snapshot)."""
    install_project(session, lowest("trl"))
    session.run("python", "-c", "import trl; print('TRL', trl.__version__)")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks and examples; mypy over the package."""
    session.install(TORCH)
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "trl_sft_kit", "tests", "noxfile.py", "benchmarks", "examples")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the documentation site into ``site/`` with ``mkdocs build --strict``: a warning is an error.

    Only the ``docs`` extra is installed, not the package: mkdocstrings reads the API reference from the
    source files without importing them, so no torch, transformers or TRL is needed. Extra arguments go to
    ``mkdocs build`` (``nox -s docs -- --site-dir /tmp/site``).
    """
    extras = nox.project.load_toml("pyproject.toml")["project"]["optional-dependencies"]
    session.install(*extras["docs"])
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # Material's notice about MkDocs 2.0; not a build warning
    session.run("mkdocs", "build", "--strict", *session.posargs)
