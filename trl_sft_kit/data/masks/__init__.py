"""Loss masks for any chat template, without ``{% generation %}`` markers.

TRL's ``assistant_only_loss`` needs a chat template with ``{% generation %}`` markers and only patches the
templates it knows. This module finds the assistant turns of ANY chat template by rendering it:

1. The conversation is rendered once and tokenized with character offsets, exactly as
   ``apply_chat_template(tokenize=True)`` tokenizes it. The spans are found in this one rendering, never in
   a separately rendered prefix (Qwen3 drops earlier reasoning, Llama 3.2 writes today's date, ...).
2. It is rendered again with everything an assistant message writes (content, reasoning, tool-call
   arguments) replaced by unique sentinels. There each turn is exact: it starts after its header (what
   ``add_generation_prompt=True`` writes after the messages before it, as far as the turn starts with it)
   and ends after what the template writes after the sentinel whatever follows: as the last message,
   before the next message, before another kind of message. That is the end-of-turn token and its
   separator (``<|im_end|>\n``), or a tool-call stop token (gpt-oss ``<|call|>``, Gemma 4
   ``<|tool_response>``). A message rendered inside a turn (Gemma 4's tool response) is cut out.
3. The text between two turns (other messages, headers) does not depend on the assistant contents, so it
   is the same in both renderings: the turns of the real rendering are what lies between. Whatever the
   template does to a reply (strips it, drops its reasoning, adds ``<think></think>``), its span is what
   the rendering holds.
4. A token is trained when it overlaps a span (the rule transformers uses for ``assistant_masks``).

Every trained turn must end on a control token, or the model never learns to stop; a template that
writes that token in the NEXT message's block (GLM-4) is refused with a
``DatasetError`` unless ``require_end_of_turn=False``.

Example:
    >>> from trl_sft_kit.testing import tiny_tokenizer
    >>> tokenizer = tiny_tokenizer("qwen2_5")
    >>> masked = tokenize_conversation(
    ...     tokenizer,
    ...     [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    ... )
    >>> tokenizer.decode(masked.trained_ids())
    'Hello!<|im_end|>\\n'
"""

# ``__all__`` is the public surface; each ``name as name`` import is a name the single module ``masks.py``
# held (other kit modules and tests import some of them), kept importable from the package.
from trl_sft_kit.data.masks.end_of_turn import end_of_turn_trained
from trl_sft_kit.data.masks.labels import _label_chat as _label_chat
from trl_sft_kit.data.masks.labels import _plain as _plain
from trl_sft_kit.data.masks.labels import _render_spans as _render_spans
from trl_sft_kit.data.masks.labels import assistant_turns as assistant_turns
from trl_sft_kit.data.masks.prefixes import _common_prefix_length as _common_prefix_length
from trl_sft_kit.data.masks.rendering import LOSS_KEYS as LOSS_KEYS
from trl_sft_kit.data.masks.rendering import _Chat as _Chat
from trl_sft_kit.data.masks.rendering import _render_jinja as _render_jinja
from trl_sft_kit.data.masks.rows import Turns as Turns
from trl_sft_kit.data.masks.rows import _conversation_chat as _conversation_chat
from trl_sft_kit.data.masks.rows import _prompt_completion_chat as _prompt_completion_chat
from trl_sft_kit.data.masks.rows import tokenize_conversation, tokenize_prompt_completion, tokenize_text
from trl_sft_kit.data.masks.templates import VISION_TEMPLATES as VISION_TEMPLATES
from trl_sft_kit.data.masks.templates import text_only_templates
from trl_sft_kit.data.masks.tokens import IGNORE_INDEX, MaskedTokens, TokenSpan

__all__ = [
    "IGNORE_INDEX",
    "MaskedTokens",
    "TokenSpan",
    "end_of_turn_trained",
    "text_only_templates",
    "tokenize_conversation",
    "tokenize_prompt_completion",
    "tokenize_text",
]
