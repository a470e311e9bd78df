"""recipe.inspect(): what training sees, measured with the tokenizer alone, in text, HTML, rich and JSON."""

from __future__ import annotations

import html
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import RecipeError, SFTRecipe
from trl_sft_kit.inspection import InspectReport, LengthStats, inspect_recipe

REPO = Path(__file__).resolve().parent.parent
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"
END_OF_TURN = "<|im_end|>\n"  # what qwen2_5 writes after every message


def chat_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CHAT.read_text(encoding="utf-8").splitlines() if line.strip()]


def assistant_text(messages: list[dict[str, Any]]) -> str:
    """What assistant-only loss must train in a qwen2_5 conversation: each reply and its end of turn."""
    return "".join(m["content"] + END_OF_TURN for m in messages if m["role"] == "assistant")


@pytest.fixture(scope="module")
def chat_report(tiny_model_dir: Path) -> InspectReport:
    recipe = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(CHAT)
        .loss("assistant_only")
        .packing("bfd")
        .training(max_length=64)
    )
    return recipe.inspect(rows=4)


@pytest.fixture(scope="module")
def uncut_report(tiny_model_dir: Path) -> InspectReport:
    """The chat data with assistant-only loss under the default max_length, which cuts no row."""
    return SFTRecipe().model(tiny_model_dir).dataset(CHAT).loss("assistant_only").inspect(rows=4)


@pytest.mark.parametrize("which", ["uncut", "cut at max_length 64"])
def test_json_report_of_assistant_only_chat_marks_exactly_the_assistant_tokens(
    which: str, chat_report: InspectReport, uncut_report: InspectReport, tiny_model_dir: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    report = uncut_report if which == "uncut" else chat_report
    data = json.loads(report.to_json())
    assert data["format"] == "messages" and "detected" in data["detection"]
    assert data["loss"] == {"mode": "assistant_only", "effective": "assistant_only"}
    assert len(data["rows"]) == 4
    for shown, row in zip(data["rows"], chat_rows(), strict=False):
        ids, mask, tokens = shown["token_ids"], shown["loss_mask"], shown["tokens"]
        assert len(ids) == len(mask) == len(tokens) == shown["num_tokens"]
        rendered = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        assert shown["text"] == rendered == "".join(tokens)
        assert ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
        trained = [token_id for token_id, loss in zip(ids, mask, strict=True) if loss]
        assert tokenizer.decode(trained) == assistant_text(row["messages"])
        assert "".join(t for t, loss in zip(tokens, mask, strict=True) if loss) == assistant_text(
            row["messages"]
        )
        # each trained span starts right after the assistant header and nothing else is trained
        runs = _runs(shown["segments"])  # segments also split where max_length cuts; join them by loss
        replies = [m["content"] + END_OF_TURN for m in row["messages"] if m["role"] == "assistant"]
        assert [text for text, loss in runs if loss] == replies
        for k, (_, loss) in enumerate(runs):
            if loss:
                assert runs[k - 1][0].endswith("<|im_start|>assistant\n")


def _runs(segments: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    runs: list[tuple[str, bool]] = []
    for segment in segments:
        if runs and runs[-1][1] == segment["loss"]:
            runs[-1] = (runs[-1][0] + segment["text"], segment["loss"])
        else:
            runs.append((segment["text"], segment["loss"]))
    return runs


def test_notebook_html_marks_exactly_the_assistant_tokens_and_escapes_the_text(
    uncut_report: InspectReport, tiny_model_dir: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert uncut_report.truncation is not None and uncut_report.truncation.rows == 0
    page = uncut_report._repr_html_()
    blocks = re.findall(r"<pre class='tsk-row'>(.*?)</pre>", page, re.S)
    assert len(blocks) == 4
    assert "<|im_start|>" not in page and "&lt;|im_start|&gt;" in page
    for block, row in zip(blocks, chat_rows(), strict=False):
        marked = re.findall(r"<mark class='tsk-loss'>(.*?)</mark>", block, re.S)
        assert [html.unescape(m) for m in marked] == [
            m["content"] + END_OF_TURN for m in row["messages"] if m["role"] == "assistant"
        ]
        plain = html.unescape(re.sub(r"<[^>]+>", "", block))
        assert plain == tokenizer.apply_chat_template(row["messages"], tokenize=False)


def test_html_escapes_markup_in_the_data(tiny_model_dir: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": "<script>alert('x')</script> & more"},
                {"role": "assistant", "content": "<b>bold</b> & <mark>"},
            ]
        }
    ]
    report = SFTRecipe().model(tiny_model_dir).dataset(rows).loss("assistant_only").inspect(rows=1)
    page = report._repr_html_()
    assert "<script>" not in page and "<b>bold" not in page
    assert "&lt;script&gt;" in page
    assert (
        "<mark class='tsk-loss'>&lt;b&gt;bold&lt;/b&gt; &amp; &lt;mark&gt;&lt;|im_end|&gt;\n</mark>" in page
    )


def test_plain_text_puts_markers_around_the_loss_tokens(chat_report: InspectReport) -> None:
    text = str(chat_report)
    first = chat_rows()[0]["messages"]
    assert f"[[{assistant_text(first)}]]" in text
    assert "user\nWhat is the opposite of hot?<|im_end|>" in text  # prompts carry no markers
    assert "format 'messages'" in text and "model not loaded" in text
    assert "token lengths" in text and "truncation: max_length 64" in text and "packing" in text
    assert "\x1b[" not in text


def test_print_is_coloured_on_a_terminal_and_plain_elsewhere(chat_report: InspectReport) -> None:
    plain = io.StringIO()
    chat_report.print(plain)  # not a terminal
    assert plain.getvalue() == str(chat_report)

    coloured = io.StringIO()
    chat_report.print(coloured, color=True)
    out = coloured.getvalue()
    assert "\x1b[" in out and "[[" not in out
    assert "The opposite of hot is cold." in out

    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=120)
    console.print(chat_report)
    assert "The opposite of hot is cold." in console.file.getvalue()  # type: ignore[attr-defined]


def test_lengths_truncation_and_packing_agree_with_the_training_data_stage(
    chat_report: InspectReport, tiny_model_dir: Path
) -> None:
    from trl_sft_kit.data.pipeline import prepare_training_data
    from trl_sft_kit.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(SFTRecipe().model(tiny_model_dir).model_spec, "the recipe")  # type: ignore[arg-type]
    lengths = [
        len(tokenizer(tokenizer.apply_chat_template(r["messages"], tokenize=False))["input_ids"])
        for r in chat_rows()
    ]
    stats = chat_report.lengths
    assert (stats.count, stats.total, stats.max, stats.min) == (
        len(lengths),
        sum(lengths),
        max(lengths),
        min(lengths),
    )
    assert sum(b.count for b in stats.histogram) == stats.count
    assert all(a.high + 1 == b.low for a, b in zip(stats.histogram, stats.histogram[1:], strict=False))

    truncation = chat_report.truncation
    assert truncation is not None
    assert truncation.rows == sum(n > 64 for n in lengths)
    assert truncation.tokens == sum(n - 64 for n in lengths if n > 64)

    base = SFTRecipe().model(tiny_model_dir).dataset(CHAT).loss("assistant_only").training(max_length=64)
    unpacked = prepare_training_data(base, load_tokenizer(base.model_spec, "the recipe"))  # type: ignore[arg-type]
    assert unpacked.tokenization.rows_truncated == truncation.rows
    assert unpacked.tokenization.tokens_truncated == truncation.tokens
    assert unpacked.tokenization.rows_all_trained_tokens_cut == truncation.rows_losing_all_loss

    estimates = {e.strategy: e for e in chat_report.packing}
    from trl_sft_kit.packing import packer_names

    assert tuple(estimates) == packer_names()
    assert estimates["bfd"].chosen and not estimates["ffd"].chosen
    assert "refused with loss 'assistant_only'" in estimates["wrapped"].note
    for strategy in ("ffd", "bfd"):
        recipe = base.packing(strategy)
        packed = prepare_training_data(recipe, load_tokenizer(recipe.model_spec, "the recipe"))  # type: ignore[arg-type]
        assert packed.packing is not None
        assert estimates[strategy].rows == packed.packing.rows
        assert estimates[strategy].report.fill == pytest.approx(packed.packing.fill)  # type: ignore[union-attr]


def test_inspect_never_loads_the_model(tiny_model_dir: Path, tmp_path: Path, monkeypatch: Any) -> None:
    tokenizer_only = tmp_path / "tokenizer-only"
    tokenizer_only.mkdir()
    for path in tiny_model_dir.iterdir():
        if path.suffix != ".safetensors" and path.name not in ("config.json", "generation_config.json"):
            shutil.copy(path, tokenizer_only / path.name)

    import transformers

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("inspect() loaded a model")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    report = SFTRecipe().model(tokenizer_only).dataset(CHAT).inspect(rows=1)
    assert report.tokenization.rows_out == 64 and 0 < report.rows[0].num_trained < report.rows[0].num_tokens


def test_prompt_completion_trains_the_completion_and_its_eos(tiny_model_dir: Path, sample_file: Any) -> None:
    path = sample_file("prompt_completion", 8)
    report = SFTRecipe().model(tiny_model_dir).dataset(path).inspect(rows=2)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    row = report.to_dict()["rows"][0]
    trained = "".join(s["text"] for s in row["segments"] if s["loss"])
    assert report.tokenization.loss == "completion_only"
    assert trained.startswith(first["completion"].strip()) or first["completion"] in trained
    assert row["text"].startswith(first["prompt"])


def test_skipped_rows_are_listed_with_their_reasons(tiny_model_dir: Path) -> None:
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    bad = {"messages": [{"role": "user", "content": "Hi"}, {"role": "robot", "content": "Beep"}]}
    recipe = SFTRecipe().model(tiny_model_dir).dataset([good, bad, good], on_bad_rows="skip")
    report = recipe.inspect(rows=5)
    assert report.data.rows_read == 3 and report.data.rows_kept == 2 and len(report.rows) == 2
    (skipped,) = report.to_dict()["skipped"]
    assert skipped["stage"] == "conversion" and "robot" in skipped["reason"] and "row 1" in skipped["where"]
    assert "skipped rows: 1" in str(report) and "robot" in report._repr_html_()


def test_large_data_samples_trls_packers_and_says_so(tiny_model_dir: Path) -> None:
    recipe = SFTRecipe().model(tiny_model_dir).dataset(CHAT)
    report = inspect_recipe(recipe, rows=0, packing_sample=16)
    estimates = {e.strategy: e for e in report.packing}
    assert estimates["ffd"].sampled is None  # the kit's packer is worked out from every length
    assert estimates["bfd"].sampled == 16 and estimates["bfd"].sequences == 64
    assert "sample of 16" in estimates["bfd"].summary()
    assert report.rows == ()


def test_bad_arguments_and_recipes_fail_before_anything_loads(tiny_model_dir: Path) -> None:
    with pytest.raises(RecipeError, match="'rows'"):
        SFTRecipe().model(tiny_model_dir).dataset(CHAT).inspect(rows=-1)
    with pytest.raises(RecipeError, match="no training data"):
        SFTRecipe().model(tiny_model_dir).inspect()


def test_length_stats_of_no_rows_and_round_bins() -> None:
    assert LengthStats.of([]).count == 0
    stats = LengthStats.of(list(range(1, 1001)))
    assert stats.histogram[0].low == 0 and {b.high - b.low + 1 for b in stats.histogram} == {100}
    assert (stats.p50, stats.max) == (500.5, 1000)


def test_mixtures_and_streams_are_measured_as_training_sees_them(
    tiny_model_dir: Path, sample_file: Any
) -> None:
    base = SFTRecipe().model(tiny_model_dir).loss("trl")  # TRL's default: every token of chat rows
    mixed = base.mix(CHAT, count=10).mix(sample_file("prompt_completion", 8), count=6).inspect(rows=20)
    assert mixed.lengths.count == 16  # the rows training takes, not the rows read
    kinds = {row.num_trained < row.num_tokens for row in mixed.rows}
    assert kinds == {False, True}  # chat rows train every token, prompt-completion rows their completion

    streamed = base.dataset(CHAT, streaming=True).training(max_steps=2).inspect(rows=1)
    assert streamed.lengths.count == 64 and any("streamed" in note for note in streamed.notes)
    assert streamed.lengths == base.dataset(CHAT).inspect(rows=0).lengths


def test_the_cut_marker_never_splits_a_character(tiny_model_dir: Path) -> None:
    text = "日本語のテキスト🙂é" * 6
    rows = [{"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": text}]}]
    for max_length in range(40, 90, 3):
        recipe = SFTRecipe().model(tiny_model_dir).dataset(rows).training(max_length=max_length)
        report = recipe.inspect(rows=1)
        rendered = "".join(segment.text for segment in report.rows[0].segments)
        assert "\ufffd" not in rendered and "\ufffd" not in str(report)
