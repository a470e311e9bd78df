"""A run that trained logs its loss at least at its first and last step, so ``TrainResult.losses`` is never
empty: with fewer steps than ``logging_steps`` (500 by default) the trainer would log none."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import Trainer

__all__ = ["first_and_last_losses"]


@contextlib.contextmanager
def first_and_last_losses(trainer: Trainer) -> Iterator[None]:
    """While training, ask the trainer to log at the first step and at the last one (besides its own)."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step == 1 or state.global_step >= state.max_steps or control.should_training_stop:
                control.should_log = True
            return control

    callback = _Callback()
    trainer.add_callback(callback)
    try:
        yield
    finally:
        trainer.remove_callback(callback)
