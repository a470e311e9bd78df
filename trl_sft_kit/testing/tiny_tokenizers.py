"""Tiny byte-level BPE tokenizers, trained offline in milliseconds, with a chat template's control tokens.

``tokenizers`` and ``transformers`` are imported inside ``tiny_tokenizer``, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from trl_sft_kit.testing.chat_templates import _resolve_template
from trl_sft_kit.testing.sample_data import _sample_texts
from trl_sft_kit.testing.special_tokens import template_special_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["tiny_tokenizer"]

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
