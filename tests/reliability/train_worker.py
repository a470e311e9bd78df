"""Trains a recipe in a process of its own, for the tests that interrupt a run (not a test module).

    python train_worker.py RECIPE_JSON MODE [STEP] [--resume]

``RECIPE_JSON`` is ``SFTRecipe.to_dict()`` as JSON. Modes:

- ``pause STEP``: once checkpoint ``STEP`` is saved (at the start of the next step), write ``paused`` next
  to the recipe file and sleep, waiting to be killed.
- ``slow``: sleep a little after every step and print ``step N``, so that a Ctrl-C lands mid-run.
- ``plain``: just train.

Prints ``done <global_step>`` when training ends, or the ``KeyboardInterrupt`` message and exits with 130.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str]) -> int:
    # A user's training process answers Ctrl-C; one started from a background job inherits SIGINT
    # ignored (a shell ignores it for `cmd &`), so the worker puts Python's own handler back first.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from transformers import TrainerCallback

    from trl_sft_kit import SFTRecipe

    recipe_file, mode = Path(argv[0]), argv[1]
    pause_at = int(argv[2]) if mode == "pause" else None
    resume = "--resume" in argv
    recipe = SFTRecipe.from_dict(json.loads(recipe_file.read_text(encoding="utf-8")))

    class Pace(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if pause_at is not None and state.global_step == pause_at:
                (recipe_file.parent / "paused").write_text(str(state.global_step), encoding="utf-8")
                time.sleep(600)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if mode == "slow":
                print(f"step {state.global_step}", flush=True)
                time.sleep(0.5)

    compiled = recipe.compile()
    compiled.trainer.add_callback(Pace())
    try:
        result = compiled.train(resume=resume)
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}", flush=True)
        return 130
    print(f"done {result.global_step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
