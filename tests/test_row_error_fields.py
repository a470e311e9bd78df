"""A RowError's attributes name the place its message names: file, line and field agree (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.errors import RowError

TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['content'] == 'boom' %}{{ raise_exception('this template refuses boom') }}{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _chat(user: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": "Fine."}]}


@pytest.mark.parametrize("how", ["inspect", "compile"])
def test_a_template_error_names_the_same_file_line_and_field_in_message_and_attributes(
    tmp_path: Path, tiny_model_dir: Path, fast_training: dict[str, object], how: str
) -> None:
    data = tmp_path / "chats.jsonl"
    rows = [_chat(f"Question {n}?") for n in range(6)]
    rows[3] = _chat("boom")  # line 4
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    template = tmp_path / "refusing.jinja"
    template.write_text(TEMPLATE, encoding="utf-8")
    recipe = (
        SFTRecipe()
        .model(str(tiny_model_dir))
        .dataset(str(data))
        .chat_template(str(template))
        .training(**fast_training)
    )
    with pytest.raises(RowError) as info:
        recipe.inspect() if how == "inspect" else recipe.compile()
    error = info.value
    assert (error.path, error.line) == (str(data), 4)
    assert error.field is not None
    assert str(error).startswith(f"{data}, line 4, field {error.field!r}: ")
    assert "refuses boom" in str(error)
