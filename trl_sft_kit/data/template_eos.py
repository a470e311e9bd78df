"""The chat template's end-of-turn token, which a model trained on conversations must learn to stop on.

``template_eos`` finds it by rendering a two-turn probe conversation with the tokenizer's template;
``apply_template_eos`` makes it the tokenizer's eos when the data stage trains chat data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from trl_sft_kit.data.settings import settings_of
from trl_sft_kit.errors import SFTKitError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.report import DatasetReport
    from trl_sft_kit.data.settings import DataSettings, SupportsDataSettings

__all__ = ["apply_template_eos", "template_eos"]


def template_eos(
    settings: DataSettings | SupportsDataSettings, report: DatasetReport, tokenizer: PreTrainedTokenizerBase
) -> str | None:
    """The chat template's end-of-turn token, when chat data is trained and the tokenizer's eos differs.

    A conversation is trained to stop on the token that ends each assistant turn (``<|im_end|>``,
    ``<|eot_id|>``, ``<end_of_turn>``); that token must also be the tokenizer's and the model's eos, or
    generation runs past the end of the turn. ``.tokens(eos=...)`` overrides this.
    """
    settings = settings_of(settings)
    if settings.tokens_spec.eos is not None or report.canonical == "text" or not tokenizer.chat_template:
        return None
    from trl_sft_kit.data.masks import tokenize_conversation

    # Two turns: the first one's end is the template's end of turn, free of anything a template appends
    # after the last message (phi3 writes the eos token there).
    probe = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye"},
    ]
    try:
        masked = tokenize_conversation(tokenizer, probe, require_end_of_turn=False)
    except SFTKitError:
        return None
    controls = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    first_turn = [span for span in masked.spans if span.message_index == 1]
    for span in first_turn:
        for token_id in reversed(masked.input_ids[span.start : span.end]):
            if token_id in controls:
                token = str(tokenizer.convert_ids_to_tokens(token_id))
                return None if token == tokenizer.eos_token else token
    return None


def apply_template_eos(
    settings: DataSettings, reports: Iterable[DatasetReport], tokenizer: PreTrainedTokenizerBase
) -> str | None:
    """Set the tokenizer's eos to the template's end of turn, as the first source that is not text says.

    Returns:
        The token set (``template_eos`` of that source), or None when the eos is left as it was.
    """
    eos = None
    for report in reports:
        eos = template_eos(settings, report, tokenizer)
        if eos is not None or report.canonical != "text":
            break
    if eos is not None:
        tokenizer.eos_token = eos
    return eos
