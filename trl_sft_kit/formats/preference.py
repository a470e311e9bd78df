"""Preference data (``chosen``/``rejected`` pairs, KTO's labelled completions), trained on the chosen answers.

Preference data is not SFT data, so ``format="auto"`` refuses it (see ``auto_refusal``); naming this format,
``.dataset(..., format="preference_chosen")``, fine-tunes on the answers people preferred:

- ``chosen``/``rejected`` with a ``prompt``: the prompt and the chosen answer become a prompt-completion row
  (strings stay strings; when either is a list of messages, both are messages).
- ``chosen``/``rejected`` without a prompt (the prompt is inside both): a conversation is split where chosen
  and rejected part (or before its last assistant turn); a string where the two texts part, at a word
  boundary, as TRL's ``extract_prompt`` does.
- LLaMA-Factory's ShareGPT pairs (``conversations`` with ``chosen`` and ``rejected`` turns, ``{from,
  value}``): the conversation is the prompt and the chosen turn the completion.
- KTO rows (``prompt``, ``completion``, ``label``), and LLaMA-Factory's KTO layout (a ``messages`` or ShareGPT
  ``conversations`` list beside a ``label``, as its ``kto_en_demo.json``): a row labelled ``true`` is a
  prompt-completion row (a conversation's last answer is the completion); one labelled ``false`` is left
  out with ``RowExcludedError``, which the report counts as skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats.messages import describe, is_list, normalise_messages, prompt_completion_row
from trl_sft_kit.formats.protocol import FormatMatch, FormatOptions, RowExcludedError

__all__ = ["PREFERENCE_FORMAT", "PreferenceChosenFormat"]

PREFERENCE_FORMAT = "preference_chosen"
"""The name to force to train on the chosen answers of preference data."""


def _is_kto(row: Mapping[str, Any]) -> bool:
    return "prompt" in row and "completion" in row and isinstance(row.get("label"), bool)


def _is_labelled_conversation(row: Mapping[str, Any]) -> bool:
    """LLaMA-Factory's KTO layout: a conversation (``messages`` or ShareGPT ``conversations``) and a label."""
    return ("messages" in row or "conversations" in row) and "chosen" not in row and "label" in row


@attrs.frozen
class PreferenceChosenFormat:
    """Preference pairs and KTO rows, converted to prompt-completion rows of the chosen answers."""

    name: str = PREFERENCE_FORMAT
    canonical: str = "prompt_completion"
    auto_refusal: str = (
        "it is preference data, not SFT data (in KTO data, 'label' marks each answer desirable (true) or "
        "undesirable (false): training every row would teach the undesirable answers too). Train it with a "
        "preference trainer (TRL's DPOTrainer or KTOTrainer), or pass "
        f".dataset(..., format={PREFERENCE_FORMAT!r}) to fine-tune on the chosen answers only (KTO rows "
        "labelled false are then left out and counted)."
    )

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """``chosen`` and ``rejected`` fields, or ``prompt``, ``completion`` and a true/false ``label``."""
        if "chosen" in row and "rejected" in row:
            if "conversations" in row:
                return FormatMatch.yes(
                    1.0, "has 'conversations' with 'chosen' and 'rejected' turns (ShareGPT preference pairs)"
                )
            return FormatMatch.yes(1.0, "has 'chosen' and 'rejected' fields (preference pairs)")
        if _is_kto(row):
            return FormatMatch.yes(0.95, "has 'prompt', 'completion' and a true/false 'label' (KTO data)")
        if _is_labelled_conversation(row) and isinstance(row["label"], bool):
            return FormatMatch.yes(
                0.95,
                "has a conversation and a true/false 'label' (KTO data: desirable or undesirable answers)",
            )
        return FormatMatch.no(
            "needs 'chosen' and 'rejected', or 'prompt', 'completion' and a true/false 'label'"
        )

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """The prompt and the chosen answer; a KTO row labelled false raises ``RowExcludedError``."""
        if "chosen" in row:
            return _chosen(row)
        labelled = _is_labelled_conversation(row)
        if "label" in row and (labelled or ("prompt" in row and "completion" in row)):
            label = row["label"]
            if not isinstance(label, bool):
                raise RowError(f"a KTO label must be true or false (got {describe(label)}).", field="label")
            if not label:
                raise RowExcludedError(
                    "the KTO label is false: an undesirable answer, left out of SFT on chosen answers.",
                    field="label",
                )
            return _labelled_conversation(row) if labelled else prompt_completion_row(row)
        raise RowError(
            "is neither a preference pair ('chosen', 'rejected') nor a KTO row "
            "('prompt', 'completion', 'label')."
        )


def _labelled_conversation(row: Mapping[str, Any]) -> dict[str, Any]:
    """A KTO conversation labelled true: the turns before its last answer are the prompt, that answer the
    completion (so that only the labelled answer carries loss)."""
    if "messages" in row:
        messages = normalise_messages(row["messages"], "messages")
    else:
        from trl_sft_kit.formats.sharegpt import sharegpt_messages

        messages = sharegpt_messages(row["conversations"], "conversations")
        if isinstance(row.get("system"), str) and row["system"].strip() and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": row["system"]})
    if messages[-1]["role"] != "assistant":
        field = "messages" if "messages" in row else "conversations"
        raise RowError("a KTO conversation must end with the labelled assistant answer.", field=field)
    asked = max((i for i, m in enumerate(messages) if m["role"] != "assistant"), default=-1)
    if asked < 0:
        raise RowError("the KTO conversation has no prompt before its answer.", field="messages")
    return {"prompt": messages[: asked + 1], "completion": messages[asked + 1 :]}


def _sharegpt_pair(row: Mapping[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's ShareGPT pairs: ``conversations`` is the prompt, ``chosen`` the answer turn."""
    from trl_sft_kit.formats.sharegpt import sharegpt_messages

    prompt = sharegpt_messages(row["conversations"], "conversations")
    answer = sharegpt_messages(row["chosen"], "chosen")
    if isinstance(row.get("system"), str) and row["system"].strip() and prompt[0]["role"] != "system":
        prompt.insert(0, {"role": "system", "content": row["system"]})
    return _renamed(lambda: prompt_completion_row({"prompt": prompt, "completion": answer}))


def _chosen(row: Mapping[str, Any]) -> dict[str, Any]:
    if "conversations" in row and "prompt" not in row:
        return _sharegpt_pair(row)
    chosen, prompt = row.get("chosen"), row.get("prompt")
    if is_list(chosen):
        messages = normalise_messages(chosen, "chosen")
        if any(message["role"] != "assistant" for message in messages):
            return _split_conversation(messages, row.get("rejected"))
        if prompt is None:
            raise RowError(
                "holds only assistant messages and the row has no 'prompt', so there is nothing to answer.",
                field="chosen",
            )
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        return _renamed(lambda: prompt_completion_row({"prompt": prompt, "completion": messages}))
    if not isinstance(chosen, str):
        raise RowError(f"must be a string or a list of messages (got {describe(chosen)}).", field="chosen")
    if prompt is None:
        return _split_text(chosen, row.get("rejected"))
    completion: Any = [{"role": "assistant", "content": chosen}] if is_list(prompt) else chosen
    return _renamed(lambda: prompt_completion_row({"prompt": prompt, "completion": completion}))


def _renamed(convert: Any) -> dict[str, Any]:
    """Run a prompt-completion conversion, naming its ``completion`` field ``chosen`` in errors."""
    try:
        result: dict[str, Any] = convert()
    except RowError as exc:
        field = exc.field
        if field is not None and field.startswith("completion"):
            field = "chosen" + field[len("completion") :]
        raise RowError(exc.reason, field=field) from None
    return result


def _split_conversation(messages: list[dict[str, Any]], rejected: Any) -> dict[str, Any]:
    """Split a whole chosen conversation into prompt and completion where it parts from the rejected one."""
    try:
        other = normalise_messages(rejected, "rejected", need_assistant=False)
    except RowError:
        other = []
    shared = 0
    while shared < min(len(messages), len(other)) and messages[shared] == other[shared]:
        shared += 1
    if not 0 < shared < len(messages) or all(m["role"] != "assistant" for m in messages[shared:]):
        last_asked = max(i for i, m in enumerate(messages) if m["role"] != "assistant")
        shared = last_asked + 1
    if shared >= len(messages):
        raise RowError("the chosen conversation ends without an assistant answer.", field="chosen")
    return {"prompt": messages[:shared], "completion": messages[shared:]}


def _split_text(chosen: str, rejected: Any) -> dict[str, Any]:
    """Split a chosen text where it parts from the rejected one, at a word boundary."""
    if not isinstance(rejected, str):
        raise RowError(
            "without a 'prompt' field, chosen and rejected must both hold the prompt and an answer; "
            f"'rejected' is {describe(rejected)}.",
            field="rejected",
        )
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    cut = shared
    if 0 < cut < len(chosen) and not chosen[cut].isspace() and not chosen[cut - 1].isspace():
        cut = max((i for i in range(cut) if chosen[i].isspace()), default=0)  # back to the word's start
    if 0 < cut < len(chosen) and chosen[cut - 1] == " ":
        cut -= 1  # the space before the answer belongs to the answer, as in TRL's extract_prompt
    if not chosen[:cut].strip() or not chosen[cut:].strip():
        raise RowError(
            "chosen and rejected do not part after a shared prompt, so the prompt cannot be told from the "
            "answer; add a 'prompt' field.",
            field="chosen",
        )
    return {"prompt": chosen[:cut], "completion": chosen[cut:]}
