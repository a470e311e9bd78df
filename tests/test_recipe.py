"""Tests for ``SFTRecipe``: immutability, equality, ``training()``, ``validate()``, ``explain()``, repr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from trl_sft_kit import RecipeError, SFTRecipe
from trl_sft_kit.compile import DEFAULT_MODEL, MODEL_ENV
from trl_sft_kit.packing import TRLPacker, packer_names, register_packer, unregister_packer
from trl_sft_kit.sft_fields import FIELD_ALIASES, OWNED_FIELDS, sftconfig_fields
from trl_sft_kit.specs import FrozenMapping, InlineRows

TEXT_ROWS = [{"text": "The sky is blue."}, {"text": "Grass is green."}]
PC_ROWS = [{"prompt": "2+2=", "completion": "4"}, {"prompt": "3+3=", "completion": "6"}]
CHAT_ROWS = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
]


def rich() -> SFTRecipe:
    """A recipe with every option set, built afresh on each call (from fresh lists and dicts)."""
    return (
        SFTRecipe()
        .model("Qwen/Qwen2.5-0.5B-Instruct", dtype="bfloat16", attn_implementation="sdpa", revision="main")
        .dataset([dict(row) for row in PC_ROWS], columns={"question": "prompt"}, on_bad_rows="skip")
        .lora(
            r=8,
            alpha=16,
            dropout=0.1,
            target_modules=["q_proj", "v_proj"],
            use_dora=True,
            modules_to_save=["lm_head"],
        )
        .quantize("4bit", quant_type="fp4", double_quant=False, compute_dtype="bfloat16")
        .packing("bfd")
        .neftune(5.0)
        .liger()
        .loss("completion_only")
        .chat_template("qwen2_5")
        .tokens(eos="<|im_end|>", pad="<|endoftext|>")
        .training(epochs=2, lr=1e-4, lr_scheduler_kwargs={"min_lr": 1e-6, "warmup": [1, 2]}, seed=7)
    )


# Every builder method, called with arguments that change the rich recipe.
BUILDER_CALLS: dict[str, Callable[[SFTRecipe], SFTRecipe]] = {
    "model": lambda r: r.model("gpt2"),
    "dataset": lambda r: r.dataset("other.jsonl"),
    "lora": lambda r: r.lora(r=32),
    "quantize": lambda r: r.quantize("8bit"),
    "packing": lambda r: r.packing(False),
    "neftune": lambda r: r.neftune(1.5),
    "liger": lambda r: r.liger(False),
    "loss": lambda r: r.loss("all"),
    "chat_template": lambda r: r.chat_template("llama3_2"),
    "tokens": lambda r: r.tokens(eos="</s>"),
    "training": lambda r: r.training(seed=8, max_length=256),
}


# ------------------------------------------------------------------------------------------ immutability


def test_builder_calls_cover_every_builder_method() -> None:
    expected = {
        "model",
        "dataset",
        "lora",
        "quantize",
        "packing",
        "neftune",
        "liger",
        "loss",
        "chat_template",
        "tokens",
        "training",
    }
    assert set(BUILDER_CALLS) == expected
    for name in expected:
        assert callable(getattr(SFTRecipe, name))


@pytest.mark.parametrize("method", sorted(BUILDER_CALLS))
def test_builder_returns_new_recipe_and_leaves_original_unchanged(method: str) -> None:
    original = rich()
    before_dict, before_hash = original.to_dict(), hash(original)
    changed = BUILDER_CALLS[method](original)
    assert isinstance(changed, SFTRecipe)
    assert changed is not original
    assert changed != original
    assert original.to_dict() == before_dict
    assert hash(original) == before_hash
    assert original == rich()


@pytest.mark.parametrize("method", sorted(BUILDER_CALLS))
def test_builder_on_empty_recipe_leaves_it_empty(method: str) -> None:
    empty = SFTRecipe()
    changed = BUILDER_CALLS[method](empty)
    assert changed is not empty
    assert empty == SFTRecipe()
    assert empty.to_dict() == {}


def test_each_option_builder_sets_only_its_own_field() -> None:
    base = SFTRecipe()
    expected_field = {
        "model": "model_spec",
        "dataset": "dataset_spec",
        "lora": "lora_spec",
        "quantize": "quantization_spec",
        "neftune": "neftune_spec",
        "loss": "loss_spec",
        "chat_template": "tokens_spec",
        "tokens": "tokens_spec",
        "training": "training_fields",
    }
    for method, field in expected_field.items():
        changed = BUILDER_CALLS[method](base)
        differing = [
            f.name for f in attrs.fields(SFTRecipe) if getattr(changed, f.name) != getattr(base, f.name)
        ]
        assert differing == [field], method
    assert BUILDER_CALLS["liger"](base.liger()).liger_enabled is False
    assert base.packing("ffd").packing_spec is not None


@pytest.mark.parametrize("field", [f.name for f in attrs.fields(SFTRecipe)])
def test_recipe_fields_cannot_be_assigned(field: str) -> None:
    recipe = rich()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(recipe, field, None)
    assert recipe == rich()


def test_specs_and_training_fields_cannot_be_changed_in_place() -> None:
    recipe = rich()
    assert recipe.lora_spec is not None and recipe.model_spec is not None and recipe.dataset_spec is not None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        recipe.lora_spec.r = 64  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        recipe.model_spec.dtype = "float32"  # type: ignore[misc]
    with pytest.raises(TypeError):
        recipe.training_fields["seed"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        recipe.lora_spec.options["use_dora"] = False  # type: ignore[index]
    with pytest.raises(TypeError):
        recipe.dataset_spec.source[0]["prompt"] = "changed"
    assert recipe == rich()


def test_changing_the_callers_lists_and_dicts_afterwards_changes_nothing() -> None:
    rows = [dict(row) for row in PC_ROWS]
    kwargs: dict[str, Any] = {"min_lr": 1e-6, "steps": [1, 2]}
    modules = ["lm_head"]
    targets = ["q_proj"]
    columns = {"question": "prompt"}
    recipe = (
        SFTRecipe()
        .dataset(rows, columns=columns)
        .lora(target_modules=targets, modules_to_save=modules)
        .training(lr_scheduler_kwargs=kwargs)
    )
    snapshot = recipe.to_dict()
    rows[0]["prompt"] = "mutated"
    rows.append({"prompt": "x", "completion": "y"})
    kwargs["min_lr"] = 0.5
    kwargs["steps"].append(3)
    modules.append("embed_tokens")
    targets.append("k_proj")
    columns["answer"] = "completion"
    assert recipe.to_dict() == snapshot
    assert recipe.training_fields["lr_scheduler_kwargs"] == {"min_lr": 1e-6, "steps": (1, 2)}


def test_to_dict_output_is_a_copy() -> None:
    recipe = rich()
    data = recipe.to_dict()
    data["training"]["seed"] = 99
    data["dataset"]["rows"][0]["prompt"] = "mutated"
    data["lora"]["options"]["modules_to_save"].append("x")
    assert recipe == rich()
    assert recipe.to_dict() != data


# ------------------------------------------------------------------------------------------ equality


def test_separately_built_recipes_are_equal_and_hash_equal() -> None:
    first, second = rich(), rich()
    assert first is not second
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1
    assert {first: "a"}[second] == "a"


def test_inline_rows_and_dict_fields_compare_by_content() -> None:
    def build() -> SFTRecipe:
        return (
            SFTRecipe()
            .dataset(
                [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
            )
            .training(lr_scheduler_kwargs={"min_lr": 1e-6, "nested": {"a": [1, 2]}})
            .lora(modules_to_save=["lm_head"])
        )

    assert build() == build()
    assert hash(build()) == hash(build())
    other = SFTRecipe().dataset(
        [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "YO"}]}]
    )
    assert build().dataset_spec != other.dataset_spec


def test_training_field_order_does_not_matter() -> None:
    one = SFTRecipe().training(seed=1).training(max_length=64, learning_rate=1e-4)
    two = SFTRecipe().training(learning_rate=1e-4, max_length=64, seed=1)
    three = SFTRecipe().training(lr=1e-4, max_seq_length=64).training(seed=1)
    assert one == two == three
    assert hash(one) == hash(two) == hash(three)


DIFFERENT = [
    (lambda: SFTRecipe().lora(r=8), lambda: SFTRecipe().lora(r=16)),
    (lambda: SFTRecipe().lora(use_dora=True), lambda: SFTRecipe().lora(use_dora=False)),
    (lambda: SFTRecipe().lora(), lambda: SFTRecipe()),
    (lambda: SFTRecipe().model("gpt2"), lambda: SFTRecipe().model("gpt2", dtype="float32")),
    (lambda: SFTRecipe().dataset(TEXT_ROWS), lambda: SFTRecipe().dataset(TEXT_ROWS[:1])),
    (lambda: SFTRecipe().dataset("a.jsonl"), lambda: SFTRecipe().dataset("a.jsonl", on_bad_rows="skip")),
    (lambda: SFTRecipe().packing("ffd"), lambda: SFTRecipe().packing("bfd")),
    (lambda: SFTRecipe().quantize("4bit"), lambda: SFTRecipe().quantize("8bit")),
    (lambda: SFTRecipe().neftune(5), lambda: SFTRecipe().neftune(5.5)),
    (lambda: SFTRecipe().liger(), lambda: SFTRecipe()),
    (lambda: SFTRecipe().loss("all"), lambda: SFTRecipe()),
    (lambda: SFTRecipe().chat_template("a"), lambda: SFTRecipe().chat_template("b")),
    (lambda: SFTRecipe().tokens(eos="a"), lambda: SFTRecipe().tokens(pad="a")),
    (
        lambda: SFTRecipe().training(lr_scheduler_kwargs={"a": 1}),
        lambda: SFTRecipe().training(lr_scheduler_kwargs={"a": 2}),
    ),
    (lambda: SFTRecipe().training(seed=1), lambda: SFTRecipe()),
]


@pytest.mark.parametrize(("make_one", "make_other"), DIFFERENT)
def test_different_recipes_differ(
    make_one: Callable[[], SFTRecipe], make_other: Callable[[], SFTRecipe]
) -> None:
    one, other = make_one(), make_other()
    assert one != other
    assert one.to_dict() != other.to_dict()
    assert len({one, other}) == 2


# ------------------------------------------------------------------------------------------ repr


def test_repr_of_empty_recipe() -> None:
    assert repr(SFTRecipe()) == "SFTRecipe()"


def test_repr_is_short_and_shows_inline_rows_as_a_count() -> None:
    rows = [{"text": f"row {i} " + "x" * 500} for i in range(3000)]
    recipe = SFTRecipe().model("gpt2").dataset(rows).lora(r=4).training(lr=1e-4)
    text = repr(recipe)
    assert "<3000 inline rows>" in text
    assert "xxxx" not in text
    assert len(text) < 400
    assert text.startswith("SFTRecipe(")
    assert "'gpt2'" in text and "r=4" in text and "learning_rate" in text
    # options left at their defaults are not shown
    assert "loss" not in text and "tokens" not in text and "liger" not in text


def test_repr_of_rich_recipe_names_every_option() -> None:
    text = repr(rich())
    for part in (
        "Qwen/Qwen2.5-0.5B-Instruct",
        "<2 inline rows>",
        "r=8",
        "bits=4",
        "'bfd'",
        "alpha=5.0",
        "liger_enabled=True",
        "completion_only",
        "qwen2_5",
        "<|im_end|>",
        "seed",
    ):
        assert part in text, part
    assert len(text) < 1000


def test_repr_of_a_loaded_model_does_not_dump_it() -> None:
    class BigModel:
        def __repr__(self) -> str:
            return "W" * 10_000

    recipe = SFTRecipe().model(BigModel(), tokenizer=BigModel())
    text = repr(recipe)
    assert "<loaded BigModel>" in text
    assert "tokenizer=<loaded>" in text
    assert "WWW" not in text


# ------------------------------------------------------------------------------------------ training()


@pytest.mark.parametrize(
    ("alias", "field", "value"),
    [
        ("epochs", "num_train_epochs", 3),
        ("batch_size", "per_device_train_batch_size", 4),
        ("lr", "learning_rate", 2e-4),
        ("max_seq_length", "max_length", 512),
    ],
)
def test_training_aliases(alias: str, field: str, value: Any) -> None:
    recipe = SFTRecipe().training(**{alias: value})
    assert dict(recipe.training_fields) == {field: value}
    assert recipe == SFTRecipe().training(**{field: value})


def test_training_accepts_every_sftconfig_field_not_owned_by_a_method() -> None:
    sample = {"int": 3, "float": 0.5, "bool": True, "str": "steps", "": None}
    recipe = SFTRecipe()
    expected = {}
    for name, kind in sftconfig_fields().items():
        if name in OWNED_FIELDS:
            continue
        recipe = recipe.training(**{name: sample[kind]})
        expected[FIELD_ALIASES.get(name, name)] = sample[kind]
    assert dict(recipe.training_fields) == expected
    assert len(expected) > 100


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("learning_rat", "learning_rate"),
        ("num_train_epoch", "num_train_epochs"),
        ("per_device_train_batch", "per_device_train_batch_size"),
        ("warmup_ratio_", "warmup_steps"),
        ("max_seq_len", "max_seq_length"),
    ],
)
def test_training_unknown_field_suggests_closest(typo: str, suggestion: str) -> None:
    with pytest.raises(RecipeError) as info:
        SFTRecipe().training(**{typo: 1})
    message = str(info.value)
    assert repr(typo) in message
    assert f"Did you mean {suggestion!r}?" in message
    assert info.value.problems == (message,)


def test_training_unknown_field_without_close_match() -> None:
    with pytest.raises(RecipeError) as info:
        SFTRecipe().training(zzzqqq=1)
    assert "'zzzqqq'" in str(info.value)
    assert "Did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "method"),
    [
        ("packing", ".packing("),
        ("packing_strategy", ".packing("),
        ("neftune_noise_alpha", ".neftune("),
        ("assistant_only_loss", ".loss("),
        ("completion_only_loss", ".loss("),
        ("use_liger_kernel", ".liger("),
        ("chat_template_path", ".chat_template("),
        ("eos_token", ".tokens("),
        ("pad_token", ".tokens("),
        ("dataset_text_field", ".dataset("),
        ("model_init_kwargs", ".model("),
    ],
)
def test_training_refuses_fields_owned_by_a_method(field: str, method: str) -> None:
    with pytest.raises(RecipeError) as info:
        SFTRecipe().training(**{field: True})
    assert repr(field) in str(info.value)
    assert method in str(info.value)


def test_training_reports_every_bad_field_at_once() -> None:
    with pytest.raises(RecipeError) as info:
        SFTRecipe().training(learning_rat=1, packing=True, seed=1)
    assert len(info.value.problems) == 2
    assert "learning_rat" in info.value.problems[0]
    assert "packing" in info.value.problems[1]


def test_training_second_call_adds_and_overrides() -> None:
    first = SFTRecipe().training(lr=1e-4, seed=1)
    second = first.training(learning_rate=2e-4, max_length=128)
    assert dict(second.training_fields) == {"learning_rate": 2e-4, "seed": 1, "max_length": 128}
    assert dict(first.training_fields) == {"learning_rate": 1e-4, "seed": 1}
    assert dict(second.training(epochs=1).training_fields)["num_train_epochs"] == 1


def test_training_alias_and_field_in_one_call_is_refused() -> None:
    with pytest.raises(RecipeError, match="given twice"):
        SFTRecipe().training(lr=1e-4, learning_rate=2e-4)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"learning_rate": "5e-5"}, {"learning_rate": 5e-5}),
        ({"epochs": "3"}, {"num_train_epochs": 3}),
        ({"max_length": 512.0}, {"max_length": 512}),
        ({"max_length": None}, {"max_length": None}),
        ({"bf16": True}, {"bf16": True}),
        ({"output_dir": Path("runs") / "a"}, {"output_dir": str(Path("runs") / "a")}),
    ],
)
def test_training_coerces_values(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    recipe = SFTRecipe().training(**fields)
    assert dict(recipe.training_fields) == expected
    for key, value in expected.items():
        assert type(recipe.training_fields[key]) is type(value)


@pytest.mark.parametrize(
    "fields",
    [
        {"learning_rate": "fast"},
        {"max_length": True},
        {"seed": 1.5},
        {"do_eval": "maybe"},
        {"learning_rate": [1]},
    ],
)
def test_training_refuses_wrongly_typed_values(fields: dict[str, Any]) -> None:
    with pytest.raises(RecipeError) as info:
        SFTRecipe().training(**fields)
    assert repr(next(iter(fields))) in str(info.value)


# ------------------------------------------------------------------------------------------ other builders


def test_packing_true_means_ffd_and_false_turns_it_off() -> None:
    assert SFTRecipe().packing(True) == SFTRecipe().packing("ffd") == SFTRecipe().packing()
    assert SFTRecipe().packing("bfd").packing(False) == SFTRecipe()


def test_unknown_packing_strategy_lists_registered_ones() -> None:
    with pytest.raises(RecipeError) as info:
        SFTRecipe().packing("best_ever")
    message = str(info.value)
    assert "'best_ever'" in message
    names = packer_names()
    assert {"ffd", "bfd", "bfd_split", "wrapped"} <= set(names)
    for name in names:
        assert repr(name) in message


@pytest.mark.parametrize("alpha", [0, 0.0, -1, -0.5, float("nan"), True])
def test_neftune_alpha_must_be_positive(alpha: Any) -> None:
    with pytest.raises(RecipeError, match="alpha"):
        SFTRecipe().neftune(alpha)


@pytest.mark.parametrize(
    "build",
    [
        lambda: SFTRecipe().lora(r=0),
        lambda: SFTRecipe().lora(r="abc"),
        lambda: SFTRecipe().lora(dropout=1.0),
        lambda: SFTRecipe().lora(alpha=-1),
        lambda: SFTRecipe().lora(target_modules=[]),
        lambda: SFTRecipe().lora(alpha=4, lora_alpha=3),  # peft's name beside the short one
        lambda: SFTRecipe().quantize("2bit"),
        lambda: SFTRecipe().quantize(double_quant="yes"),
        lambda: SFTRecipe().loss("everything"),
        lambda: SFTRecipe().model(""),
        lambda: SFTRecipe().model("gpt2", dtype="float8"),
        lambda: SFTRecipe().model("gpt2", trust_remote_code="yes"),
        lambda: SFTRecipe().model(object()),
        lambda: SFTRecipe().dataset(""),
        lambda: SFTRecipe().dataset([]),
        lambda: SFTRecipe().dataset(["not a dict"]),
        lambda: SFTRecipe().dataset("a.jsonl", format="no_such_format"),
        lambda: SFTRecipe().dataset("a.jsonl", on_bad_rows="ignore"),
        lambda: SFTRecipe().dataset("a.jsonl", split=3),
        lambda: SFTRecipe().liger("yes"),
        lambda: SFTRecipe().tokens(eos=""),
        lambda: SFTRecipe().chat_template(""),
    ],
)
def test_bad_builder_arguments_raise_recipe_error(build: Callable[[], SFTRecipe]) -> None:
    with pytest.raises(RecipeError):
        build()


def test_chat_template_accepts_a_path_and_none_keeps_the_tokenizers() -> None:
    recipe = SFTRecipe().chat_template(Path("templates") / "chat.jinja")
    assert recipe.tokens_spec.chat_template == str(Path("templates") / "chat.jinja")
    assert recipe.chat_template(None) == SFTRecipe()


def test_tokens_second_call_replaces_both() -> None:
    recipe = SFTRecipe().tokens(eos="a", pad="b").tokens(eos="c")
    assert (recipe.tokens_spec.eos, recipe.tokens_spec.pad) == ("c", None)
    assert recipe.chat_template("x").tokens(eos="e").tokens_spec.chat_template == "x"


def test_dataset_list_becomes_inline_rows() -> None:
    recipe = SFTRecipe().dataset(TEXT_ROWS)
    assert recipe.dataset_spec is not None
    assert isinstance(recipe.dataset_spec.source, InlineRows)
    assert recipe.dataset_spec.source.to_list() == TEXT_ROWS
    assert isinstance(recipe.dataset_spec.source[0], FrozenMapping)


# ------------------------------------------------------------------------------------------ validate()


def problems_of(recipe: SFTRecipe) -> tuple[str, ...]:
    with pytest.raises(RecipeError) as info:
        recipe.validate()
    problems = info.value.problems
    if len(problems) == 1:
        assert str(info.value).endswith(f": {problems[0]}")
    for number, problem in enumerate(problems if len(problems) > 1 else (), 1):
        assert f"\n  {number}. {problem}" in str(info.value)
    return problems


def test_validate_returns_the_recipe_when_it_works() -> None:
    recipe = SFTRecipe().dataset(CHAT_ROWS).lora().quantize().packing("bfd").loss("assistant_only")
    assert recipe.validate() is recipe


def test_validate_no_dataset() -> None:
    (problem,) = problems_of(SFTRecipe().lora())
    assert "no training data" in problem and ".dataset(" in problem


@pytest.mark.usefixtures("data_folder")
def test_validate_quantization_without_lora() -> None:
    (problem,) = problems_of(SFTRecipe().dataset("chats.jsonl").quantize("8bit"))
    assert "quantize('8bit')" in problem and "lora()" in problem
    SFTRecipe().dataset("chats.jsonl").quantize("8bit").lora().validate()


def test_validate_assistant_only_loss_with_wrapped_packing() -> None:
    (problem,) = problems_of(SFTRecipe().dataset(CHAT_ROWS).packing("wrapped").loss("assistant_only"))
    assert "'assistant_only'" in problem and "'wrapped'" in problem
    SFTRecipe().dataset(CHAT_ROWS).packing("bfd").loss("assistant_only").validate()
    SFTRecipe().dataset(CHAT_ROWS).packing("wrapped").loss("all").validate()


@pytest.fixture()
def text_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in TEXT_ROWS), encoding="utf-8")
    return path


@pytest.fixture()
def prompt_completion_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in PC_ROWS), encoding="utf-8")
    return path


TEXT_SOURCES: dict[str, Callable[[Path], SFTRecipe]] = {
    "txt file": lambda _: SFTRecipe().dataset("corpus.txt"),
    "format text": lambda _: SFTRecipe().dataset("pairs.jsonl", format="text"),
    "detected jsonl": lambda path: SFTRecipe().dataset(path),
    "inline rows": lambda _: SFTRecipe().dataset(TEXT_ROWS),
    "text field": lambda _: SFTRecipe().dataset([{"body": "words"}], text_field="body"),
    "renamed column": lambda _: SFTRecipe().dataset([{"body": "words"}], columns={"body": "text"}),
}


@pytest.mark.parametrize("source", sorted(TEXT_SOURCES))
@pytest.mark.usefixtures("data_folder")
def test_validate_completion_only_loss_with_plain_text(source: str, text_jsonl: Path) -> None:
    recipe = TEXT_SOURCES[source](text_jsonl)
    (problem,) = problems_of(recipe.loss("completion_only"))
    assert "'completion_only'" in problem and "plain-text" in problem
    (problem,) = problems_of(recipe.loss("assistant_only"))
    assert "'assistant_only'" in problem and "plain-text" in problem
    recipe.loss("all").validate()
    recipe.validate()


@pytest.mark.parametrize(
    "build",
    [
        lambda path: SFTRecipe().dataset(path),
        lambda path: SFTRecipe().dataset(PC_ROWS),
        lambda path: SFTRecipe().dataset(
            "pairs.jsonl"
        ),  # missing: compile() reports it, validate() stays cheap
        lambda path: SFTRecipe().dataset("corpus.txt", format="prompt_completion"),
    ],
)
@pytest.mark.usefixtures("data_folder")
def test_validate_completion_only_loss_with_prompt_completion_data(
    build: Callable[[Path], SFTRecipe], prompt_completion_jsonl: Path
) -> None:
    build(prompt_completion_jsonl).loss("completion_only").validate()


@pytest.fixture()
def temporary_packer() -> Iterator[str]:
    name = "test_recipe_temporary_packer"
    register_packer(TRLPacker(name, "bfd", False, "a packer that is registered for one test"))
    try:
        yield name
    finally:
        unregister_packer(name)


def test_validate_unknown_packing_strategy(temporary_packer: str) -> None:
    recipe = SFTRecipe().dataset(CHAT_ROWS).packing(temporary_packer)
    recipe.validate()
    unregister_packer(temporary_packer)
    (problem,) = problems_of(recipe)
    assert repr(temporary_packer) in problem
    for name in packer_names():
        assert repr(name) in problem


def test_validate_training_field_sftconfig_lacks() -> None:
    recipe = SFTRecipe(training_fields={"learning_rat": 1e-4}).dataset(CHAT_ROWS)
    (problem,) = problems_of(recipe)
    assert "'learning_rat'" in problem and "'learning_rate'" in problem


def test_validate_packing_without_row_length() -> None:
    (problem,) = problems_of(SFTRecipe().dataset(CHAT_ROWS).packing("bfd").training(max_length=None))
    assert "max_length" in problem
    SFTRecipe().dataset(CHAT_ROWS).training(max_length=None).validate()


@pytest.mark.usefixtures("data_folder")
def test_validate_reports_every_conflict_at_once() -> None:
    recipe = (
        SFTRecipe(training_fields={"num_train_epoch": 1}).quantize().packing("wrapped").loss("assistant_only")
    )
    problems = problems_of(recipe)
    assert len(problems) >= 2
    joined = " ".join(problems)
    for part in ("no training data", "without lora()", "'wrapped'", "'num_train_epoch'"):
        assert part in joined
    assert len(problems) == 4

    text_problems = problems_of(SFTRecipe().dataset("corpus.txt").quantize().loss("completion_only"))
    assert len(text_problems) == 2


# ------------------------------------------------------------------------------------------ explain()


def test_explain_names_model_data_packer_loss_and_config_fields() -> None:
    text = rich().dataset("chats.jsonl").explain()
    for part in (
        "Qwen/Qwen2.5-0.5B-Instruct",
        "chats.jsonl",
        "packing: bfd",
        "loss: completion_only",
        "lora:",
        "quantization:",
        "neftune: alpha=5.0",
        "liger: on",
        "SFTConfig fields:",
        "learning_rate = 0.0001",
        "num_train_epochs = 2",
        "packing = True",
        "neftune_noise_alpha = 5.0",
        "seed = 7",
    ):
        assert part in text, part
    # only the fields that matter: not those the kit sets to prepare the data itself
    assert "skip_prepare_dataset" not in text and "dataset_text_field" not in text


def test_explain_of_a_bare_recipe_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    text = SFTRecipe().explain()
    assert f"model: {DEFAULT_MODEL} (from the default)" in text
    assert "data: none yet" in text
    assert "packing: off" in text
    assert "loss: auto" in text
    assert "lora: off" in text
    monkeypatch.setenv(MODEL_ENV, "my/model")
    assert "model: my/model (from $" in SFTRecipe().explain()


@pytest.mark.parametrize("given", [{"weight": 0.25}, {"count": 10}])
def test_a_second_dataset_with_a_weight_or_count_is_refused_and_points_to_mix(given: dict[str, Any]) -> None:
    first = SFTRecipe().dataset("a.jsonl")
    with pytest.raises(RecipeError) as caught:
        first.dataset("b.jsonl", **given)
    message = str(caught.value)
    assert "'b.jsonl'" in message and ".mix(" in message and next(iter(given)) in message
    mixed = SFTRecipe().dataset("a.jsonl", weight=0.7).mix("b.jsonl", weight=0.3)
    assert mixed.dataset_specs[0].weight == 0.7
    assert first.dataset("b.jsonl").dataset_spec is not None  # a plain second call still replaces
