"""Developer sessions: ``nox -s tests``, ``nox -s lint``."""

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
    """ruff and mypy over the package and tests."""
    session.install(TORCH)
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "trl_sft_kit", "tests", "noxfile.py")
    session.run("mypy")
