"""Sample SFT data: deterministic, learnable rows in every built-in dataset format, and a JSON Lines writer.

The rows are short everyday-fact question/answer pairs (``QA_PAIRS``); their texts also train the tiny
tokenizer (``_sample_texts``), so that the sample data tokenizes into few tokens.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["FORMATS", "QA_PAIRS", "sample_rows", "write_sample_dataset"]

#: Dataset formats understood by ``sample_rows`` / ``write_sample_dataset``.
FORMATS: tuple[str, ...] = (
    "messages",
    "sharegpt",
    "alpaca",
    "instruction_response",
    "prompt_completion",
    "text",
)

#: Simple, deterministic question/answer pairs about everyday facts.
QA_PAIRS: tuple[tuple[str, str], ...] = (
    ("What colour is the sky?", "The sky is blue."),
    ("What colour is grass?", "Grass is green."),
    ("What colour is snow?", "Snow is white."),
    ("What colour is a ripe banana?", "A ripe banana is yellow."),
    ("What colour is a ripe tomato?", "A ripe tomato is red."),
    ("How many legs does a dog have?", "A dog has four legs."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("How many legs does a bird have?", "A bird has two legs."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("How many months are in a year?", "There are twelve months in a year."),
    ("How many hours are in a day?", "There are twenty-four hours in a day."),
    ("How many minutes are in an hour?", "There are sixty minutes in an hour."),
    ("What is two plus two?", "Two plus two is four."),
    ("What is three plus four?", "Three plus four is seven."),
    ("What is ten minus one?", "Ten minus one is nine."),
    ("What is five times two?", "Five times two is ten."),
    ("What do cows drink?", "Cows drink water."),
    ("What do bees make?", "Bees make honey."),
    ("What do cats like to chase?", "Cats like to chase mice."),
    ("What sound does a dog make?", "A dog says woof."),
    ("What sound does a cat make?", "A cat says meow."),
    ("What sound does a cow make?", "A cow says moo."),
    ("Where do fish live?", "Fish live in water."),
    ("Where does the sun rise?", "The sun rises in the east."),
    ("Where does the sun set?", "The sun sets in the west."),
    ("What is frozen water called?", "Frozen water is called ice."),
    ("What do plants need to grow?", "Plants need water and light to grow."),
    ("What season comes after winter?", "Spring comes after winter."),
    ("What season comes after summer?", "Autumn comes after summer."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
    ("What is the opposite of up?", "The opposite of up is down."),
    ("What is the opposite of big?", "The opposite of big is small."),
    ("What do we use to write on paper?", "We use a pen or a pencil."),
    ("What do we use to cut paper?", "We use scissors to cut paper."),
    ("What do you wear on your feet?", "You wear shoes on your feet."),
    ("What do you use to open a door?", "You use a key to open a door."),
    ("Which animal has a long neck?", "The giraffe has a long neck."),
    ("Which animal has a trunk?", "The elephant has a trunk."),
    ("What shines in the sky at night?", "The moon and the stars shine at night."),
    ("What falls from clouds when it rains?", "Rain drops fall from the clouds."),
)

_SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are a helpful assistant.",
    "Answer in one short sentence.",
    "You answer simple questions.",
)

_ALPACA_INSTRUCTIONS: tuple[str, ...] = (
    "Answer the question.",
    "Answer the following question in one sentence.",
    "Give a short answer to the question below.",
)

_TEXT_KEYS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "input", "output"),
    "instruction_response": ("instruction", "response"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}

# Chat formats: (column, speaker key, text key, (system, user, assistant) speaker names).
_CHAT_KEYS: dict[str, tuple[str, str, str, tuple[str, str, str]]] = {
    "messages": ("messages", "role", "content", ("system", "user", "assistant")),
    "sharegpt": ("conversations", "from", "value", ("system", "human", "gpt")),
}


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"Unknown sample data format {format!r}; valid formats are: {', '.join(FORMATS)}.")


def _qa_stream(n: int, rng: random.Random) -> Iterator[tuple[str, str]]:
    """Yield ``n`` Q/A pairs: shuffled passes over the bank, each pair once per pass."""
    produced = 0
    while produced < n:
        order = list(QA_PAIRS)
        rng.shuffle(order)
        for pair in order:
            if produced >= n:
                return
            produced += 1
            yield pair


def sample_rows(format: str, n: int = 32, *, seed: int = 0) -> list[dict[str, Any]]:
    """Build deterministic, learnable sample rows in one of the supported dataset formats.

    Rows are drawn from ``QA_PAIRS`` (short everyday-fact Q/A pairs). Chat formats
    vary the shape: some rows carry a system message and some have a second turn.

    Args:
        format: One of ``FORMATS`` (``"messages"``, ``"sharegpt"``, ``"alpaca"``,
            ``"instruction_response"``, ``"prompt_completion"``, ``"text"``).
        n: Number of rows to produce.
        seed: Seed of the (local) random generator; same seed gives the same rows.

    Returns:
        A list of ``n`` JSON-serialisable dicts with the keys of that format.

    Raises:
        ValueError: If ``format`` is unknown or ``n`` is negative.
    """
    _check_format(format)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"trl_sft_kit:{format}:{seed}")
    extra_rng = random.Random(f"trl_sft_kit:{format}:{seed}:extra")
    rows: list[dict[str, Any]] = []
    for question, answer in _qa_stream(n, rng):
        with_system = rng.random() < 0.3
        multi_turn = rng.random() < 0.25
        system = rng.choice(_SYSTEM_PROMPTS)
        q2, a2 = extra_rng.choice(QA_PAIRS)
        if format in _CHAT_KEYS:
            column, speaker, text, (system_name, user_name, assistant_name) = _CHAT_KEYS[format]
            turns = [(system_name, system)] if with_system else []
            turns += [(user_name, question), (assistant_name, answer)]
            if multi_turn:
                turns += [(user_name, q2), (assistant_name, a2)]
            rows.append({column: [{speaker: name, text: content} for name, content in turns]})
        elif format == "alpaca":
            if with_system:  # reuse the draw: roughly a third of the rows carry an input
                instruction = rng.choice(_ALPACA_INSTRUCTIONS)
                rows.append({"instruction": instruction, "input": question, "output": answer})
            else:
                rows.append({"instruction": question, "input": "", "output": answer})
        elif format == "instruction_response":
            rows.append({"instruction": question, "response": answer})
        elif format == "prompt_completion":
            rows.append({"prompt": question, "completion": " " + answer})
        else:  # text
            rows.append({"text": f"Question: {question} Answer: {answer}"})
    return rows


def write_sample_dataset(path: str | os.PathLike[str], format: str, n: int = 32, *, seed: int = 0) -> Path:
    """Write ``sample_rows`` to a JSON Lines file (UTF-8, one object per line).

    Args:
        path: Destination file; parent directories are created.
        format: One of ``FORMATS``.
        n: Number of rows.
        seed: Seed passed to ``sample_rows``.

    Returns:
        The path written, as a ``Path``.

    Raises:
        ValueError: If ``format`` is unknown.
    """
    rows = sample_rows(format, n, seed=seed)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def _sample_texts() -> list[str]:
    """All strings appearing in the sample data (used to train the tiny tokenizer)."""
    texts: list[str] = []
    for question, answer in QA_PAIRS:
        texts += [question, answer, f"Question: {question} Answer: {answer}", " " + answer]
    texts += list(_SYSTEM_PROMPTS) + list(_ALPACA_INSTRUCTIONS)
    return texts
