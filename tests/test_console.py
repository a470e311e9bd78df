"""The console shows the kit's summary once, the bars and loss that matter and real warnings; library noise
goes to trl_sft_kit.log in the output folder, and --verbose / TRL_SFT_KIT_VERBOSE=1 shows it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from trl_sft_kit.console import LOG_FILE, quiet_console
from trl_sft_kit.testing import tiny_tokenizer

REPO = Path(__file__).resolve().parent.parent

#: What the libraries print that says nothing about the user's run (as the issue lists it).
NOISE = (
    "FutureWarning",
    "DeprecationWarning",
    "is_gradient_checkpointing",
    "warnings.warn(",
    "kernels-community",
    "offline mode",
    "Loading weights",
    "Writing model shards",
    "Token indices sequence length",
)


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("TRL_SFT_KIT_MODEL", "TRL_SFT_KIT_VERBOSE")
    }
    environment.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **env)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "trl_sft_kit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder = tmp_path_factory.mktemp("demo")
    done = run_cli("demo", "--epochs", "1", "--output-dir", str(folder / "out"), cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, folder / "out"


def test_the_demo_console_holds_no_library_noise_and_each_summary_once(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, output_dir = demo
    console = done.stdout + done.stderr
    for noise in NOISE:
        assert noise not in console, f"{noise!r} on the console:\n{console}"
    for line in ("training on:", "format 'messages' (detected", "tokens: 64 rows", "rows: 64 read"):
        assert console.count(line) == 1, f"{line!r} {console.count(line)} times:\n{console}"
    assert "carry loss (" in console and "assistant turns" in console  # what is trained, and its share
    assert "loss by logging step:" in done.stdout
    log = output_dir / LOG_FILE
    assert f"library messages: {log}" in done.stderr
    text = log.read_text(encoding="utf-8")
    assert "is_gradient_checkpointing" in text  # routed, not dropped
    assert "training on:" in text  # the kit's own lines too: the log tells the whole story


def test_verbose_shows_the_library_messages_on_the_console(tmp_path: Path) -> None:
    done = run_cli(
        "demo", "--epochs", "1", "--output-dir", str(tmp_path / "out"), cwd=tmp_path, TRL_SFT_KIT_VERBOSE="1"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "is_gradient_checkpointing" in done.stderr
    assert (tmp_path / "out" / LOG_FILE).is_file()


def test_inspect_sends_the_token_indices_warning_to_the_log(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer("qwen2_5")
    tokenizer.model_max_length = 16
    tokenizer.save_pretrained(tmp_path / "tok")
    data = tmp_path / "notes.jsonl"
    data.write_text(json.dumps({"text": "word " * 200}) + "\n", encoding="utf-8")
    args = ("inspect", str(data), "--model", str(tmp_path / "tok"), "--rows", "1")
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Token indices sequence length" not in done.stdout + done.stderr
    log = Path(done.stderr.split("library messages: ")[1].split("\n")[0])
    assert "Token indices sequence length" in log.read_text(encoding="utf-8")
    log.unlink()
    loud = run_cli(*args, "--verbose", cwd=tmp_path)  # the flag, after the command, works too
    assert "Token indices sequence length" in loud.stderr


def test_deprecations_go_to_the_log_and_warnings_about_the_run_stay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handlers = logging.getLogger().handlers[:]
    with quiet_console(prefix="test"):
        warnings.warn("old API", FutureWarning, stacklevel=1)
        warnings.warn("your rows are long", UserWarning, stacklevel=1)
        logging.getLogger("bitsandbytes.backends").warning("kernel not found")
        logging.getLogger("some.library").error("a real failure")
    err = capsys.readouterr().err
    assert "old API" not in err and "kernel not found" not in err
    assert "your rows are long" in err and "a real failure" in err
    log = Path(err.split("library messages: ")[1].strip())
    text = log.read_text(encoding="utf-8")
    assert all(s in text for s in ("old API", "kernel not found", "your rows are long", "a real failure"))
    log.unlink()
    assert logging.getLogger().handlers == handlers  # undone on leaving


def test_verbose_shows_library_log_records_and_deprecations(capsys: pytest.CaptureFixture[str]) -> None:
    with quiet_console(verbose=True, prefix="test"):
        logging.getLogger("bitsandbytes.backends").warning("kernel not found")
        warnings.warn("old API", FutureWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert "kernel not found" in err and "old API" in err
    Path(err.split("library messages: ")[1].strip()).unlink()


@pytest.mark.parametrize("strategy", ["ffd", "bfd", "wrapped"])
def test_compile_shows_no_datasets_progress_bars(
    tmp_path: Path,
    tiny_model_dir: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    strategy: str,
) -> None:
    """``Map:``, ``Filter:`` and ``Generating ... split`` bars say nothing about the run: none reach the
    console, whatever reads, caches and packs the data, and the user's own bar setting is left as it was."""
    datasets = pytest.importorskip("datasets")
    from trl_sft_kit import SFTRecipe

    monkeypatch.setenv("TRL_SFT_KIT_CACHE", str(tmp_path / "cache"))
    rows = [{"prompt": f"Question {n}?", "completion": f" Answer {n}."} for n in range(24)]
    parquet = tmp_path / "rows.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(parquet))
    datasets.enable_progress_bars()
    recipe = (
        SFTRecipe()
        .model(str(tiny_model_dir))
        .dataset(str(parquet))
        .packing(strategy)
        .cache(True)
        .training(output_dir=str(tmp_path / "out"), max_length=64, max_steps=1, report_to="none")
    )
    capfd.readouterr()
    for _ in range(2):  # a miss, then a hit read back from the cache
        recipe.compile()
    err = capfd.readouterr().err
    for bar in ("Map", "Filter", "Generating", "Saving the dataset", "Loading dataset"):
        assert bar not in err, f"{bar!r} on the console:\n{err[-2000:]}"
    assert datasets.is_progress_bar_enabled()
