"""``lora()`` and ``quantize()`` take peft's ``LoraConfig`` and transformers' ``BitsAndBytesConfig``, and
peft's names beside the short ones."""

from __future__ import annotations

import pytest
from peft import LoraConfig
from transformers import BitsAndBytesConfig

from trl_sft_kit import RecipeError, SFTRecipe
from trl_sft_kit.specs import LoraSpec


def test_a_lora_config_becomes_a_spec() -> None:
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.1,
        target_modules=["v_proj", "q_proj"],
        use_dora=True,
        task_type="CAUSAL_LM",
    )
    spec = SFTRecipe().lora(config).lora_spec
    assert spec == LoraSpec(
        r=8, alpha=16, dropout=0.1, target_modules=("q_proj", "v_proj"), options={"use_dora": True}
    )
    assert SFTRecipe().lora(LoraConfig()).lora_spec.target_modules == "all-linear"


def test_a_lora_config_for_another_task_or_with_arguments_is_refused() -> None:
    with pytest.raises(RecipeError, match="task_type='SEQ_CLS'"):
        SFTRecipe().lora(LoraConfig(task_type="SEQ_CLS"))
    with pytest.raises(RecipeError, match="LoraConfig alone"):
        SFTRecipe().lora(LoraConfig(), alpha=8)


def test_peft_names_stand_beside_the_short_ones() -> None:
    spec = SFTRecipe().lora(r=4, lora_alpha=8, lora_dropout=0.2).lora_spec
    assert (spec.alpha, spec.dropout, dict(spec.options)) == (8, 0.2, {})
    with pytest.raises(RecipeError, match="both 'alpha' and 'lora_alpha'"):
        SFTRecipe().lora(alpha=4, lora_alpha=8)


def test_a_bitsandbytes_config_becomes_a_spec() -> None:
    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype="bfloat16",
    )
    spec = SFTRecipe().quantize(config).quantization_spec
    assert spec is not None
    assert (spec.mode, spec.quant_type, spec.double_quant, spec.compute_dtype) == (
        "4bit",
        "nf4",
        True,
        "bfloat16",
    )
    eight = SFTRecipe().quantize(BitsAndBytesConfig(load_in_8bit=True)).quantization_spec
    assert eight is not None and eight.mode == "8bit"


def test_a_bitsandbytes_field_the_kit_does_not_carry_is_refused() -> None:
    with pytest.raises(RecipeError, match="llm_int8_threshold"):
        SFTRecipe().quantize(BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=3.0))
    with pytest.raises(RecipeError, match="neither load_in_4bit nor load_in_8bit"):
        SFTRecipe().quantize(BitsAndBytesConfig())


def test_peft_is_not_imported_with_the_kit() -> None:
    import subprocess
    import sys

    code = "import sys, trl_sft_kit; trl_sft_kit.SFTRecipe().lora(r=4); print('peft' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
