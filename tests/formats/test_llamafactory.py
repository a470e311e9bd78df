"""LLaMA-Factory's layouts: ShareGPT roles written into a ``messages`` column, and ShareGPT DPO files."""

from __future__ import annotations

from typing import Any

import pytest

from trl_sft_kit.data import convert_rows, load_rows
from trl_sft_kit.errors import DatasetFormatError, RowError
from trl_sft_kit.formats import PREFERENCE_FORMAT, FormatOptions
from trl_sft_kit.specs import DatasetSpec

DPO_ROW = {
    "conversations": [{"from": "human", "value": "Colour of the sky?"}],
    "chosen": {"from": "gpt", "value": "Blue."},
    "rejected": {"from": "gpt", "value": "Green."},
}


def converted(rows: list[dict[str, Any]], **options: Any) -> Any:
    spec = DatasetSpec(rows, **options)
    return convert_rows(load_rows(spec), spec, FormatOptions())


def test_sharegpt_roles_in_a_messages_column_name_sharegpt_and_the_fix() -> None:
    rows = [{"messages": [{"role": "human", "content": "Hi"}, {"role": "gpt", "content": "Hello"}]}]
    with pytest.raises(RowError, match="looks like a ShareGPT role") as caught:
        converted(rows)
    assert "format='sharegpt'" in str(caught.value) and "'messages': 'conversations'" in str(caught.value)
    assert caught.value.field == "messages[0].role"
    fixed = converted(rows, columns={"messages": "conversations"}, format="sharegpt")
    assert [m["role"] for m in fixed.rows[0]["messages"]] == ["user", "assistant"]


def test_sharegpt_dpo_rows_are_refused_as_preference_data() -> None:
    with pytest.raises(DatasetFormatError, match="preference data") as caught:
        converted([DPO_ROW, DPO_ROW])
    assert f"format={PREFERENCE_FORMAT!r}" in str(caught.value)
    assert "several formats" not in str(caught.value)


def test_sharegpt_dpo_rows_train_on_the_chosen_turn_when_asked() -> None:
    prepared = converted([DPO_ROW, {**DPO_ROW, "system": "Be brief."}], format=PREFERENCE_FORMAT)
    assert prepared.rows[0] == {
        "prompt": [{"role": "user", "content": "Colour of the sky?"}],
        "completion": [{"role": "assistant", "content": "Blue."}],
    }
    assert prepared.rows[1]["prompt"][0] == {"role": "system", "content": "Be brief."}
