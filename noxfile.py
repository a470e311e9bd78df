"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s docs``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

TORCH = "torch==2.13.0"  # the CPU wheel; install it before the project so no CUDA build is pulled


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite (tiny offline models, CPU only)."""
    session.install(TORCH)
    session.install("-e", ".[dev]")
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
