"""The examples run: every script trains the offline tiny model for a few steps, and the quickstart notebook
executes top to bottom in a Jupyter kernel.

Scripts run as ``python examples/<name>.py --output-dir ...`` runs them (their ``__main__`` block, in this
process to spare the imports); the notebook runs from ``examples/``, as Jupyter runs it. Neither is given a
model: ``TRL_SFT_KIT_MODEL`` is unset, so they build the tiny model, here in a temporary cache. The plug-in
package ``examples/format_plugin`` has its own tests in ``tests/test_formats_e2e.py``.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
NOTEBOOK = EXAMPLES / "quickstart.ipynb"
TESTED_SCRIPTS = {"chat_sft.py", "instruction_sft.py", "qlora.py", "mixture_eval.py", "vision_sft.py"}


@pytest.fixture(scope="session")
def examples_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the tiny model, shared by every example of the session."""
    return tmp_path_factory.mktemp("examples-cache")


@pytest.fixture()
def outputs(tmp_path: Path, examples_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment a user without a model gets, with outputs and the model cache in temporary folders."""
    monkeypatch.delenv("TRL_SFT_KIT_MODEL", raising=False)
    monkeypatch.setenv("TRL_SFT_KIT_CACHE", str(examples_cache))
    monkeypatch.setenv("TRL_SFT_KIT_EXAMPLES_DIR", str(tmp_path / "examples"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "examples"


def run_script(name: str, *args: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``examples/<name>`` as its ``__main__``, with ``args`` on its command line."""
    path = EXAMPLES / name
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    runpy.run_path(str(path), run_name="__main__")


def test_every_example_script_has_a_test() -> None:
    scripts = {path.name for path in EXAMPLES.glob("*.py")}
    assert scripts == TESTED_SCRIPTS, "add a test for each new script in examples/"


def test_the_notebook_is_committed_without_outputs() -> None:
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code
    assert [cell for cell in code if cell.get("outputs") or cell.get("execution_count")] == []


# ------------------------------------------------------------------------------------------ scripts


@pytest.mark.slow
def test_chat_sft(outputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run_script("chat_sft.py", monkeypatch=monkeypatch)
    printed = capsys.readouterr().out
    assert "format 'messages'" in printed and "carry loss (" in printed and ": assistant turns" in printed
    assert "packing: ffd:" in printed and "the model now answers" in printed
    assert (outputs / "chat_sft" / "adapter_config.json").is_file()
    assert (outputs / "chat_sft" / "recipe.yaml").is_file()


@pytest.mark.slow
def test_chat_sft_reads_sharegpt_too(
    outputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = EXAMPLES / "data" / "sharegpt_sample_data.jsonl"
    run_script(
        "chat_sft.py", "--data", str(data), "--output-dir", str(tmp_path / "sg"), monkeypatch=monkeypatch
    )
    assert "format 'sharegpt'" in capsys.readouterr().out
    assert (tmp_path / "sg" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_instruction_sft(
    outputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_script("instruction_sft.py", monkeypatch=monkeypatch)
    printed = capsys.readouterr().out
    assert "format 'instruction_response' became 'prompt_completion' rows; 0 rows skipped" in printed
    assert (outputs / "instruction_sft" / "adapter_config.json").is_file()


@pytest.mark.slow
def test_qlora_trains_in_4_bits_and_merges_into_a_plain_model(
    outputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("bitsandbytes", reason="the quantization extra is not installed")
    run_script("qlora.py", monkeypatch=monkeypatch)
    assert "base model loaded in 4 bits: True" in capsys.readouterr().out
    assert (outputs / "qlora" / "adapter" / "adapter_config.json").is_file()
    config = json.loads((outputs / "qlora" / "merged" / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config


@pytest.mark.slow
def test_mixture_eval(
    outputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_script("mixture_eval.py", monkeypatch=monkeypatch)
    printed = capsys.readouterr().out
    assert "eval loss:" in printed and "eval loss: None" not in printed
    assert (outputs / "mixture_eval" / "adapter_config.json").is_file()


@pytest.mark.slow
def test_vision_sft(
    outputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_script("vision_sft.py", monkeypatch=monkeypatch)
    printed = capsys.readouterr().out
    assert "format 'vision_messages'" in printed
    assert "carry loss (" in printed and "assistant turns" in printed
    assert (outputs / "vision_sft" / "adapter_config.json").is_file()


# ------------------------------------------------------------------------------------------ notebook


@pytest.mark.slow
def test_the_quickstart_notebook_runs(outputs: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails

    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )
    assert "carry loss (" in printed and ": assistant turns" in printed
    assert "steps: 3" in printed and "losses: [" in printed
    assert (outputs / "quickstart" / "adapter_config.json").is_file()
