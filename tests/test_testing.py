"""Tests for ``trl_sft_kit.testing``: offline tiny tokenizers, models and sample data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import testing as tt

REPO_ROOT = Path(__file__).resolve().parents[1]
CONVERSATION = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
]
VISION_MARKERS = ("vl", "smolvlm", "idefics", "llava")
TEXT_TEMPLATES = [
    name for name in tt.bundled_chat_template_names() if not any(m in name for m in VISION_MARKERS)
]
EXPECTED_KEYS = {
    "messages": {"messages"},
    "sharegpt": {"conversations"},
    "alpaca": {"instruction", "input", "output"},
    "instruction_response": {"instruction", "response"},
    "prompt_completion": {"prompt", "completion"},
    "text": {"text"},
}


def _ids(encoded: Any) -> list[int]:
    """transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True); v4 a list."""
    if isinstance(encoded, Mapping):
        encoded = encoded["input_ids"]
    return list(encoded)


@pytest.fixture(scope="module")
def qwen_tokenizer() -> Any:
    return tt.tiny_tokenizer("qwen2_5")


# --------------------------------------------------------------------------- templates


def test_bundled_template_names_and_text() -> None:
    names = tt.bundled_chat_template_names()
    assert names == tuple(sorted(names))
    assert {"qwen2_5", "llama3", "gemma", "phi3"} <= set(names)
    assert "<|im_start|>" in tt.bundled_chat_template("qwen2_5")
    assert tt.bundled_chat_template("llama3.jinja") == tt.bundled_chat_template("llama3")


def test_unknown_template_lists_available_names() -> None:
    with pytest.raises(ValueError, match="qwen2_5") as excinfo:
        tt.bundled_chat_template("no_such_template")
    assert "llama3" in str(excinfo.value)
    with pytest.raises(ValueError):
        tt.tiny_tokenizer("no_such_template")


@pytest.mark.parametrize("name", TEXT_TEMPLATES)
def test_every_text_template_renders(name: str) -> None:
    tok = tt.tiny_tokenizer(name)
    text = tok.apply_chat_template(CONVERSATION, tokenize=False)
    assert isinstance(text, str)
    assert "hi" in text and "hello" in text
    ids = _ids(tok.apply_chat_template(CONVERSATION, tokenize=True))
    assert ids and all(isinstance(i, int) and 0 <= i < len(tok) for i in ids)
    assert tok.decode(ids) == text  # byte-level BPE round-trips exactly
    prompt = tok.apply_chat_template(CONVERSATION[:1], tokenize=False, add_generation_prompt=True)
    assert isinstance(prompt, str) and "hi" in prompt
    # every control token found in the template encodes to exactly one id
    info = tt.template_special_tokens(name)
    for token in [*info["special"], *info["added"]]:
        assert tok.encode(token, add_special_tokens=False) == [tok.convert_tokens_to_ids(token)], token
    assert tok.eos_token in info["special"] and tok.pad_token == "<|pad|>"
    assert tok.model_max_length == 2048


@pytest.mark.parametrize(
    ("name", "tokens", "eos", "bos"),
    [
        ("qwen2_5", ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|pad|>"], "<|im_end|>", None),
        (
            "llama3",
            ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|pad|>"],
            "<|eot_id|>",
            "<|begin_of_text|>",
        ),
        ("gemma", ["<bos>", "<start_of_turn>", "<end_of_turn>", "<|pad|>"], "<end_of_turn>", "<bos>"),
    ],
)
def test_special_tokens_are_single_ids(name: str, tokens: list[str], eos: str, bos: str | None) -> None:
    tok: Any = tt.tiny_tokenizer(name)
    assert tok.eos_token == eos
    assert tok.bos_token == bos
    ids = [tok.convert_tokens_to_ids(token) for token in tokens]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(tokens)
    for token, token_id in zip(tokens, ids, strict=True):
        assert tok.encode(token, add_special_tokens=False) == [token_id]
        assert tok.decode([token_id]) == token
    # special tokens stay atomic inside running text and are dropped by skip_special_tokens
    text = tok.apply_chat_template(CONVERSATION, tokenize=False)
    ids_in_text = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids(eos) in ids_in_text
    assert "hello" in tok.decode(ids_in_text, skip_special_tokens=True)


def test_raw_and_missing_templates() -> None:
    raw = "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
    tok = tt.tiny_tokenizer(raw)
    assert tok.chat_template == raw
    assert tok.apply_chat_template(CONVERSATION, tokenize=False) == "<|user|>hi<|end|><|user|>hello<|end|>"
    assert len(tok.encode("<|user|>", add_special_tokens=False)) == 1
    bare = tt.tiny_tokenizer(None, extra_texts=["zebra zebra zebra"])
    assert bare.chat_template is None
    assert bare.eos_token == "<|endoftext|>" and bare.pad_token == "<|pad|>"


# --------------------------------------------------------------------------- model


def test_tiny_model_forward(qwen_tokenizer: Any) -> None:
    import torch

    model = tt.tiny_model(qwen_tokenizer)
    assert model.dtype == torch.float32
    assert model.config.vocab_size == len(qwen_tokenizer)
    assert model.config.pad_token_id == qwen_tokenizer.pad_token_id
    assert model.config.eos_token_id == qwen_tokenizer.eos_token_id
    assert model.generation_config.eos_token_id == qwen_tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == qwen_tokenizer.pad_token_id
    texts = [
        qwen_tokenizer.apply_chat_template(row["messages"], tokenize=False)
        for row in tt.sample_rows("messages", 4)
    ]
    batch = qwen_tokenizer(texts, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        out = model(**batch, labels=labels)
    assert out.logits.shape == (*batch["input_ids"].shape, len(qwen_tokenizer))
    assert torch.isfinite(out.loss) and torch.isfinite(out.logits).all()
    assert math.isclose(out.loss.item(), math.log(len(qwen_tokenizer)), rel_tol=0.2)  # ~uniform at init


def test_tiny_model_is_deterministic_and_leaves_global_rng_alone(qwen_tokenizer: Any) -> None:
    import torch

    state = torch.random.get_rng_state()
    a = tt.tiny_model(qwen_tokenizer, seed=1).state_dict()
    b = tt.tiny_model(qwen_tokenizer, seed=1).state_dict()
    c = tt.tiny_model(qwen_tokenizer, seed=2).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_tiny_model_learns_sample_data(qwen_tokenizer: Any) -> None:
    import torch

    model = tt.tiny_model(qwen_tokenizer)
    model.train()
    texts = [r["text"] + qwen_tokenizer.eos_token for r in tt.sample_rows("text", 32)]
    batch = qwen_tokenizer(texts, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from threads; avoids oversubscription stalls
    try:
        for _ in range(30):
            loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    assert losses[-1] < 0.5 * losses[0], losses


# --------------------------------------------------------------------------- saving


def test_save_tiny_model_round_trip(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tt.save_tiny_model(tmp_path / "tiny", chat_template="llama3", seed=3)
    assert path == tmp_path / "tiny"
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ref_tok = tt.tiny_tokenizer("llama3")
    ref_model = tt.tiny_model(ref_tok, seed=3)

    text = ref_tok.apply_chat_template(CONVERSATION, tokenize=False)
    assert tok.apply_chat_template(CONVERSATION, tokenize=False) == text
    assert len(tok) == len(ref_tok)
    for sample in [text, "What colour is the sky? 12345 café 🙂", " leading  spaces\n\n"]:
        assert tok(sample)["input_ids"] == ref_tok(sample)["input_ids"]
    assert (tok.eos_token, tok.bos_token, tok.pad_token) == (ref_tok.eos_token, ref_tok.bos_token, "<|pad|>")

    inputs = ref_tok([text], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, ref_model(**inputs).logits)
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.generation_config.eos_token_id == tok.eos_token_id
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] <= inputs["input_ids"].shape[1] + 3


def test_cached_tiny_model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRL_SFT_KIT_CACHE", str(tmp_path))
    first = tt.cached_tiny_model_dir()
    assert first == tmp_path / "tiny-qwen2_5-v1"
    assert (first / "config.json").is_file()
    mtime = (first / "config.json").stat().st_mtime_ns
    assert tt.cached_tiny_model_dir() == first
    assert (first / "config.json").stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-qwen2_5-v1"]  # no temp leftovers
    marker = next(p for p in first.iterdir() if p.name.endswith("_complete"))
    marker.write_text("stale", encoding="utf-8")  # e.g. built from another trl's template
    assert tt.cached_tiny_model_dir() == first
    assert marker.read_text(encoding="utf-8") != "stale"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-qwen2_5-v1"]
    with pytest.raises(ValueError):
        tt.cached_tiny_model_dir("no_such_template")


# --------------------------------------------------------------------------- sample data


@pytest.mark.parametrize("fmt", tt.FORMATS)
def test_sample_rows(fmt: str) -> None:
    rows = tt.sample_rows(fmt, 40)
    assert rows == tt.sample_rows(fmt, 40)
    assert rows != tt.sample_rows(fmt, 40, seed=1)
    assert len(rows) == 40 and len(tt.sample_rows(fmt, 3)) == 3
    for row in rows:
        assert set(row) == EXPECTED_KEYS[fmt]
        json.dumps(row)
    if fmt == "messages":
        roles = [[m["role"] for m in r["messages"]] for r in rows]
        assert all(r[-2:] == ["user", "assistant"] for r in roles)
        assert any(r[0] == "system" for r in roles) and any(len(r) >= 4 for r in roles)
    if fmt == "sharegpt":
        senders = [[m["from"] for m in r["conversations"]] for r in rows]
        assert all(s[-2:] == ["human", "gpt"] for s in senders)
        assert any(s[0] == "system" for s in senders)
    if fmt == "prompt_completion":
        assert all(isinstance(r["prompt"], str) and isinstance(r["completion"], str) for r in rows)


def test_sample_rows_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="instruction_response"):
        tt.sample_rows("csv")


def test_sample_rows_are_short(qwen_tokenizer: Any) -> None:
    for fmt in tt.FORMATS:
        for row in tt.sample_rows(fmt, 64):
            if fmt == "messages":
                text = " ".join(m["content"] for m in row["messages"])
            elif fmt == "sharegpt":
                text = " ".join(m["value"] for m in row["conversations"])
            else:
                text = " ".join(row.values())
            assert len(qwen_tokenizer(text)["input_ids"]) < 60, row


def test_write_sample_dataset(tmp_path: Path) -> None:
    path = tt.write_sample_dataset(tmp_path / "sub" / "data.jsonl", "alpaca", 5, seed=2)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == tt.sample_rows("alpaca", 5, seed=2)


@pytest.mark.parametrize(
    ("filename", "fmt", "n"),
    [
        ("chat_sample_data.jsonl", "messages", 64),
        ("instruction_sample_data.jsonl", "instruction_response", 64),
        ("alpaca_sample_data.jsonl", "alpaca", 32),
        ("sharegpt_sample_data.jsonl", "sharegpt", 32),
        ("prompt_completion_sample_data.jsonl", "prompt_completion", 32),
        ("text_sample_data.jsonl", "text", 32),
    ],
)
def test_shipped_data_files_match_generator(filename: str, fmt: str, n: int) -> None:
    path = REPO_ROOT / "examples" / "data" / filename
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == tt.sample_rows(fmt, n), "run `python examples/data/regenerate.py`"


# --------------------------------------------------------------------------- import cost


def test_import_is_light() -> None:
    code = textwrap.dedent(
        """
        import sys
        import trl_sft_kit.testing as t
        t.bundled_chat_template_names(); t.bundled_chat_template("qwen2_5"); t.sample_rows("messages", 4)
        names = ("torch", "transformers", "trl", "datasets", "tokenizers", "hypothesis")
        heavy = [m for m in names if m in sys.modules]
        print(",".join(heavy))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=True
    )
    assert result.stdout.strip() == "", f"heavy modules imported: {result.stdout.strip()}"


# --------------------------------------------------------------------------- strategies


def test_every_public_name_is_still_importable_from_the_package() -> None:
    for name in tt.__all__:
        assert getattr(tt, name) is not None
    assert not hasattr(tt, "strategies") or "hypothesis" in sys.modules  # a submodule, imported on demand


STRATEGY_KEYS = {
    "messages": {"messages"},
    "sharegpt": {"conversations"},
    "alpaca": {"instruction", "output"},
    "instruction_response": set(),
    "prompt_completion": {"prompt", "completion"},
    "text": set(),
    "preference_chosen": set(),
}


@pytest.mark.parametrize("name", sorted(STRATEGY_KEYS))
def test_strategies_generate_rows_of_each_format_with_its_fields(name: str) -> None:
    from hypothesis import HealthCheck, given, settings

    from trl_sft_kit.testing import strategies

    assert set(STRATEGY_KEYS) == set(strategies.BUILTIN_FORMATS)

    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategies.cases(name))
    def check(case: strategies.RowCase) -> None:
        assert case.format == name
        assert STRATEGY_KEYS[name] <= set(case.row)
        assert json.loads(json.dumps(case.row)) == case.row
        assert all(isinstance(text, str) and text.strip() for text in case.texts)

    check()


def test_junk_and_strings_in() -> None:
    from hypothesis import given, settings

    from trl_sft_kit.testing.strategies import junk, strings_in

    assert list(strings_in({"a": ["x", {"b": "y", "c": 3}], "d": None})) == ["x", "y"]

    @settings(max_examples=30, deadline=None, database=None)
    @given(junk())
    def check(value: Any) -> None:
        json.dumps(value)  # plain JSON, as a .jsonl line would hold

    check()
