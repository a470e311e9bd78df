"""Offline test helpers: tiny tokenizers, tiny causal LMs and sample SFT datasets.

Everything in this module works without network access and runs in seconds on a
laptop CPU. It is used by this repository's tests, by the ``trl-sft-kit demo``
command and is meant to be reused by downstream projects' tests.

Heavy libraries (``torch``, ``transformers``, ``tokenizers``) are imported lazily
inside the functions that need them, so ``import trl_sft_kit.testing`` stays cheap.

``trl_sft_kit.testing.strategies`` holds hypothesis strategies for rows of every
built-in dataset format and for junk; import it explicitly (it imports hypothesis).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

__all__ = [
    "FORMATS",
    "QA_PAIRS",
    "bundled_chat_template",
    "bundled_chat_template_names",
    "cached_tiny_model_dir",
    "sample_rows",
    "save_tiny_model",
    "template_special_tokens",
    "tiny_model",
    "tiny_tokenizer",
    "write_sample_dataset",
]

# --------------------------------------------------------------------------------------
# Sample data
# --------------------------------------------------------------------------------------

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

# A small, varied English corpus used (together with the sample data) to train the
# tiny tokenizer, so that common words get merged into a few tokens.
_CORPUS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "She sells sea shells by the sea shore.",
    "The cat sat on the mat and looked out of the window.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "Please answer the question in one short sentence.",
    "You are a helpful assistant. Answer the user's question.",
    "The user asked a question and the assistant gave a short answer.",
    "Question: what time is it? Answer: it is three o'clock.",
    "We went to the market to buy apples, bread, milk and eggs.",
    "The train leaves the station at nine in the morning.",
    "Water boils at one hundred degrees Celsius.",
    "My favourite colours are red, orange, yellow, green, blue and purple.",
    "One, two, three, four, five, six, seven, eight, nine, ten.",
    "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday.",
    "January, February, March, April, May, June, July and August.",
    "The children played in the park until the sun went down.",
    "He opened the door, took off his shoes and sat by the fire.",
    "Learning to ride a bicycle takes practice and patience.",
    "The library is open from ten in the morning to six in the evening.",
    "Tea or coffee? I would like a cup of tea, please.",
    "The river flows through the valley towards the sea.",
    "Birds build nests in the trees every spring.",
    "A small model can learn simple patterns from a small dataset.",
    "Thank you for your help! You're welcome.",
    "Can you tell me the way to the station? Turn left, then go straight on.",
    "The weather today is sunny with a light breeze.",
    "Dogs, cats, cows, horses, sheep and goats are common animals.",
    "Numbers like 1, 2, 3, 10, 42 and 100 appear in many texts.",
    "Instruction: write a short poem. Response: roses are red, violets are blue.",
    "The system prompt tells the assistant how it should behave.",
    "Human: hello there! Assistant: hello, how can I help you today?",
    "def add(a, b):\n    return a + b\n",
    "print('hello world')  # a tiny program",
    '{"name": "example", "value": 3, "tags": ["a", "b"]}',
    "The model answered: yes, no, maybe; it depends on the context.",
    "Autumn leaves fall slowly to the ground.",
    "In winter the lake freezes and people skate on the ice.",
    "Read the text below and summarise it in a few words.",
    "Large language models are trained on a lot of text.",
    "system: you are a helpful assistant. user: hello. assistant: hi, how can I help?",
    "The user writes a message, the assistant writes a reply and the model learns.",
    "human and gpt take turns: the human asks, the gpt model answers.",
    "The system message, the user message and the assistant message.",
)

_TEXT_KEYS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "input", "output"),
    "instruction_response": ("instruction", "response"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
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
        if format == "messages":
            messages: list[dict[str, str]] = []
            if with_system:
                messages.append({"role": "system", "content": system})
            messages.append({"role": "user", "content": question})
            messages.append({"role": "assistant", "content": answer})
            if multi_turn:
                messages.append({"role": "user", "content": q2})
                messages.append({"role": "assistant", "content": a2})
            rows.append({"messages": messages})
        elif format == "sharegpt":
            conversations: list[dict[str, str]] = []
            if with_system:
                conversations.append({"from": "system", "value": system})
            conversations.append({"from": "human", "value": question})
            conversations.append({"from": "gpt", "value": answer})
            if multi_turn:
                conversations.append({"from": "human", "value": q2})
                conversations.append({"from": "gpt", "value": a2})
            rows.append({"conversations": conversations})
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


# --------------------------------------------------------------------------------------
# Chat templates bundled with trl
# --------------------------------------------------------------------------------------


def _trl_chat_templates_dir() -> Path:
    spec = importlib.util.find_spec("trl")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("The `trl` package is not installed, so its bundled chat templates are unavailable.")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "chat_templates"
        if candidate.is_dir():
            return candidate
    raise ValueError("The installed `trl` package does not ship a `chat_templates/` folder.")


def bundled_chat_template_names() -> tuple[str, ...]:
    """List the chat templates shipped inside the installed ``trl`` package (without importing it).

    Returns:
        Sorted template names, i.e. the stems of ``trl/chat_templates/*.jinja``
        (for example ``"llama3"``, ``"qwen2_5"``, ``"qwen2_5_training"``).
    """
    return tuple(sorted(p.stem for p in _trl_chat_templates_dir().glob("*.jinja")))


def bundled_chat_template(name: str) -> str:
    """Return the Jinja text of a chat template bundled with ``trl`` (``trl/chat_templates/<name>.jinja``).

    Args:
        name: Template name, e.g. ``"qwen2_5"`` or ``"llama3"``; a trailing ``.jinja`` is accepted.

    Returns:
        The template source.

    Raises:
        ValueError: If no such template exists; the message lists the available names.
    """
    stem = name[: -len(".jinja")] if name.endswith(".jinja") else name
    directory = _trl_chat_templates_dir()
    path = directory / f"{stem}.jinja"
    if "/" in stem or "\\" in stem or not path.is_file():
        available = ", ".join(bundled_chat_template_names())
        raise ValueError(f"Unknown trl chat template {name!r}. Available templates: {available}.")
    return path.read_text(encoding="utf-8")


def _is_raw_template(chat_template: str) -> bool:
    return "{%" in chat_template or "{{" in chat_template


def _resolve_template(chat_template: str | None) -> str | None:
    if chat_template is None:
        return None
    if _is_raw_template(chat_template):
        return chat_template
    return bundled_chat_template(chat_template)


# --------------------------------------------------------------------------------------
# Special tokens
# --------------------------------------------------------------------------------------

_SPECIAL_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"<\|[^\s<>|]{1,48}\|>"),  # <|im_start|>, <|eot_id|>, <|"|>
    re.compile(r"<\|[^\s<>|]{1,48}>"),  # <|turn>, <|channel> (Gemma 4 openers)
    re.compile(r"<[^\s<>|]{1,48}\|>"),  # <turn|>, <channel|> (Gemma 4 closers)
    re.compile(r"<\uff5c[^\s<>\uff5c]{1,48}\uff5c>"),  # DeepSeek <\uff5cUser\uff5c> (full-width bars)
    re.compile(r"\[/?[A-Z][A-Z_]{1,30}\]"),  # [INST], [/INST]
)
_TAG_PATTERN = re.compile(r"</?[A-Za-z_][A-Za-z0-9_]{0,48}>")  # <start_of_turn>, <think>, </tool_call>
# Plain ``<tag>`` literals that are special tokens in the real model families. Other tags
# (``<think>``, ``<tool_call>``, ...) are added as ordinary (non-special) added tokens,
# like in the real Qwen / DeepSeek tokenizers: still one id each, but kept when decoding
# with ``skip_special_tokens=True``.
_SPECIAL_TAGS = frozenset(
    {
        "<bos>",
        "<eos>",
        "<pad>",
        "<unk>",
        "<mask>",
        "<s>",
        "</s>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<start_of_image>",
        "<end_of_image>",
        "<end_of_utterance>",
        "<image>",
        "<sop>",
        "<eop>",
    }
)
# End-of-turn tokens, most specific first; the first one a template emits becomes eos.
_EOS_PRIORITY: tuple[str, ...] = (
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<turn|>",
    "<|END_OF_TURN_TOKEN|>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",
    "<|eot|>",
    "<|return|>",
    "<|end|>",
    "<end_of_utterance>",
    "</s>",
)
_DEFAULT_EOS = "<|endoftext|>"
_PAD = "<|pad|>"


def _pick_bos(tokens: set[str]) -> str:
    """BOS token of the model family whose control tokens appear in ``tokens``."""
    if "<|eot_id|>" in tokens or "<|start_header_id|>" in tokens:
        return "<|begin_of_text|>"
    if "<start_of_turn>" in tokens or "<|turn>" in tokens:
        return "<bos>"
    if "<|START_OF_TURN_TOKEN|>" in tokens:
        return "<BOS_TOKEN>"
    if any(t.startswith("<\uff5c") for t in tokens):
        return "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
    if "[INST]" in tokens:
        return "<s>"
    return "<|startoftext|>"


def template_special_tokens(chat_template: str | None) -> dict[str, Any]:
    """Work out the control tokens a chat template needs in its tokenizer.

    Scans the template text for literal control tokens (``<|...|>``, Gemma-4 style
    ``<|x>``/``<x|>``, DeepSeek full-width-bar, ``[INST]``-style and ``<tag>`` literals)
    and picks the end-of-turn token as ``eos`` and a family-appropriate ``bos`` when the
    template uses the ``bos_token`` variable.

    Args:
        chat_template: A bundled trl template name, a raw Jinja string, or ``None``.

    Returns:
        A dict with ``special`` (list of special tokens, always including ``<|endoftext|>``
        and ``<|pad|>``), ``added`` (non-special added tokens), ``eos_token``,
        ``bos_token`` (``None`` when the template doesn't use one) and ``pad_token``.
    """
    text = _resolve_template(chat_template) or ""
    found: list[str] = []
    for pattern in _SPECIAL_PATTERNS:
        found += pattern.findall(text)
    tags = _TAG_PATTERN.findall(text)
    found += [t for t in tags if t in _SPECIAL_TAGS]
    added = sorted({t for t in tags if t not in _SPECIAL_TAGS})
    found_set = set(found)
    eos = next((t for t in _EOS_PRIORITY if t in found_set), _DEFAULT_EOS)
    bos = _pick_bos(found_set) if re.search(r"\bbos_token\b", text) else None
    special: list[str] = [_PAD, _DEFAULT_EOS]
    for token in [eos, bos, *sorted(found_set)]:
        if token is not None and token not in special:
            special.append(token)
    added = [t for t in added if t not in special]
    return {"special": special, "added": added, "eos_token": eos, "bos_token": bos, "pad_token": _PAD}


# --------------------------------------------------------------------------------------
# Tiny tokenizer / model
# --------------------------------------------------------------------------------------


def tiny_tokenizer(
    chat_template: str | None = "qwen2_5",
    *,
    vocab_size: int = 512,
    extra_texts: Iterable[str] = (),
) -> PreTrainedTokenizerFast:
    """Train a tiny byte-level BPE tokenizer offline, with the control tokens of a chat template.

    The tokenizer is trained (in milliseconds) on a small built-in English corpus plus the
    sample-data texts and ``extra_texts``; every control token the chat template emits is
    registered as a single-id special token.

    Args:
        chat_template: Name of a chat template bundled with trl (``"qwen2_5"``, ``"llama3"``,
            ``"gemma"``, ...), a raw Jinja template (anything containing ``{%`` or ``{{``),
            or ``None`` for a tokenizer without chat template.
        vocab_size: Size of the trained BPE vocabulary, special tokens included (the 256
            byte symbols always are part of it). Non-special added tokens come on top.
        extra_texts: Additional training texts, e.g. your own test data.

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` with ``eos_token`` (the template's
        end-of-turn token, or ``<|endoftext|>``), ``pad_token="<|pad|>"``, ``bos_token``
        when the template uses one, ``model_max_length=2048`` and ``chat_template`` set.

    Raises:
        ValueError: If ``chat_template`` names an unknown bundled template.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    template = _resolve_template(chat_template)
    info = template_special_tokens(template)
    special: list[str] = info["special"]

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in special],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [*_CORPUS, *_sample_texts(), *extra_texts]
    backend.train_from_iterator(corpus, trainer=trainer)
    if info["added"]:
        backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in info["added"]])

    named = {info["eos_token"], info["bos_token"], info["pad_token"]}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=info["eos_token"],
        bos_token=info["bos_token"],
        pad_token=info["pad_token"],
        extra_special_tokens=[t for t in special if t not in named],
        model_max_length=2048,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def tiny_model(
    tokenizer: PreTrainedTokenizerBase,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> PreTrainedModel:
    """Build a randomly initialised tiny Llama-architecture causal LM matching ``tokenizer``.

    Initialisation is deterministic for a given ``seed`` and does not disturb the
    caller's global torch RNG state. Llama is used rather than Qwen2 because
    transformers 5 reloads a saved ``qwen2`` folder with ``Qwen2Tokenizer``, which swaps
    in its own normaliser/pre-tokeniser, whereas a ``llama`` folder reloads the saved
    ``tokenizer.json`` verbatim.

    Args:
        tokenizer: Tokenizer whose vocabulary (``len(tokenizer)``) and special token ids
            the model is configured with.
        hidden_size: Model width; must be divisible by ``num_heads``.
        num_layers: Number of decoder layers.
        num_heads: Number of attention (and key/value) heads.
        seed: Seed for the weight initialisation.

    Returns:
        A float32 ``LlamaForCausalLM`` (tied embeddings, 2048 positions, SDPA attention)
        whose ``config`` and ``generation_config`` carry the tokenizer's
        bos/eos/pad token ids.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        use_cache=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa", dtype=torch.float32)
        except (ValueError, ImportError):  # pragma: no cover - sdpa unavailable
            model = LlamaForCausalLM._from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    model.eval()
    return model


def save_tiny_model(
    path: str | os.PathLike[str],
    *,
    chat_template: str | None = "qwen2_5",
    **model_kwargs: Any,
) -> Path:
    """Build a tiny tokenizer + model and save both with ``save_pretrained`` into ``path``.

    The folder then loads fully offline with ``AutoTokenizer.from_pretrained(path)`` and
    ``AutoModelForCausalLM.from_pretrained(path)``.

    Args:
        path: Destination folder (created if missing).
        chat_template: Passed to ``tiny_tokenizer``.
        **model_kwargs: Passed to ``tiny_model`` (``hidden_size``, ``num_layers``,
            ``num_heads``, ``seed``).

    Returns:
        The folder, as a ``Path``.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(chat_template)
    model = tiny_model(tokenizer, **model_kwargs)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


_CACHE_VERSION = "v1"  # bump when the tiny tokenizer/model recipe changes
_COMPLETE_MARKER = ".trl_sft_kit_complete"


def _cache_key(chat_template: str | None) -> str:
    if chat_template is None:
        return "none"
    if _is_raw_template(chat_template):
        return "custom-" + hashlib.sha256(chat_template.encode("utf-8")).hexdigest()[:12]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", chat_template)


def _fingerprint(template: str | None) -> str:
    """Identify what a cached folder was built from (recipe version + exact template text)."""
    digest = hashlib.sha256((template or "").encode("utf-8")).hexdigest()[:16]
    return f"{_CACHE_VERSION}:{digest}"


def _is_complete(folder: Path, fingerprint: str) -> bool:
    marker = folder / _COMPLETE_MARKER
    try:
        return marker.read_text(encoding="utf-8") == fingerprint and (folder / "config.json").is_file()
    except OSError:
        return False


def cached_tiny_model_dir(chat_template: str | None = "qwen2_5") -> Path:
    """Return a folder holding a saved tiny model + tokenizer, building it only once.

    The folder is ``tiny-<template>-v1`` in the kit's cache folder (``$TRL_SFT_KIT_CACHE``, default
    ``$HF_HOME/trl_sft_kit``: ``trl_sft_kit.cache_root``), beside the preprocessing cache's ``data/``,
    which ``clear_cache()`` empties without touching these. It is built in a temporary sibling folder
    and moved into place atomically, so concurrent callers never see a half-written model; it is rebuilt
    when the installed trl ships a different version of the template.

    Args:
        chat_template: Bundled trl template name, raw Jinja string (keyed by its hash)
            or ``None``.

    Returns:
        Path of the complete model folder.

    Raises:
        ValueError: If ``chat_template`` names an unknown bundled template.
    """
    from trl_sft_kit.cache_root import kit_cache_root

    root = kit_cache_root()
    target = root / f"tiny-{_cache_key(chat_template)}-{_CACHE_VERSION}"
    fingerprint = _fingerprint(_resolve_template(chat_template))  # also rejects unknown names
    if _is_complete(target, fingerprint):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        tmp.chmod(0o755)  # mkdtemp creates 0700; the cache may be shared
        save_tiny_model(tmp, chat_template=chat_template)
        (tmp / _COMPLETE_MARKER).write_text(fingerprint, encoding="utf-8")
        if target.exists() and not _is_complete(target, fingerprint):
            # interrupted build, or built from another version of the trl template
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_complete(target, fingerprint):  # a concurrent caller may have won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
