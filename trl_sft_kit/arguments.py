"""Keyword arguments of the recipe's builder methods, checked with the closest name.

Python's own ``TypeError`` for a misspelt keyword (``.dataset(fromat="alpaca")``) names neither the
method's real options nor the likely one; ``checked_arguments`` turns it into a ``RecipeError`` that does,
before the method runs. The wrapped method keeps its signature and docstring.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from trl_sft_kit.errors import RecipeError

__all__ = ["checked_arguments", "closest"]

F = TypeVar("F", bound=Callable[..., Any])


def closest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` Did you mean 'x'?`` for the known name closest to ``name``, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def checked_arguments(method: F) -> F:
    """Wrap a builder method so that an unknown keyword or too many arguments raise ``RecipeError``.

    Example:
        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().dataset("a.jsonl", fromat="alpaca")
        Traceback (most recent call last):
        ...
        trl_sft_kit.errors.RecipeError: dataset() has no option 'fromat'. Did you mean 'format'? ...
    """
    signature = inspect.signature(method)
    names = [
        p.name
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    ]
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if open_ended:  # extra keywords pass through, but one a letter or two from a real option is a typo
            unknown = [
                key
                for key in kwargs
                if key not in names and difflib.get_close_matches(key, names, n=1, cutoff=0.8)
            ]
        else:
            unknown = [key for key in kwargs if key not in names]
        if unknown:
            problems = [f"{method.__name__}() has no option {key!r}.{closest(key, names)}" for key in unknown]
            takes = f" It takes {', '.join(map(repr, names))}." if names else ""
            raise RecipeError(" ".join(problems) + takes, problems=tuple(problems))
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise RecipeError(f"{method.__name__}(): {exc}; see help(SFTRecipe.{method.__name__}).") from None
        return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
