"""The README's first snippet runs as written, on the offline tiny model and sample chat data.

Only the names that need the network or a GPU change: the hub model becomes a saved tiny model, the data
file a written sample, and ``.quantize("4bit")`` is dropped without a CUDA GPU (bitsandbytes 4-bit needs
one). ``result.losses[-1]`` at its end used to raise ``IndexError``: a run of fewer steps than
``logging_steps`` logged no loss.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trl_sft_kit.testing import write_sample_dataset

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

REPO = Path(__file__).resolve().parent.parent


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text("utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, "the README opens with a python snippet"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_snippet_runs(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = readme_snippet()
    assert '.model("Qwen/Qwen2.5-0.5B-Instruct")' in code and '.dataset("chats.jsonl")' in code
    monkeypatch.chdir(tmp_path)
    write_sample_dataset(tmp_path / "chats.jsonl", "messages", 16)
    code = code.replace('"Qwen/Qwen2.5-0.5B-Instruct"', repr(str(tiny_model_dir)))
    if not torch.cuda.is_available():
        code = code.replace('.quantize("4bit")', "")
    code = code.replace(".train()", ".training(disable_tqdm=True, activation_checkpointing=False).train()")
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    result = namespace["result"]
    losses = result.losses  # type: ignore[attr-defined]
    assert len(losses) >= 2 and all(loss > 0 for loss in losses)
    assert str(losses[-1]) in capsys.readouterr().out
