"""Missing or broken packages fail before anything loads, with one message that names the fix.

A missing package is simulated in a fresh interpreter whose import finders are wrapped so that the hidden
packages look uninstalled: ``importlib.util.find_spec`` returns None and ``import`` raises
``ModuleNotFoundError``, as when they are not installed. Every recipe names a model folder that does not
exist, so an error about the model would mean something was loaded first.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import BackendError, MissingDependencyError, RecipeError, SFTRecipe
from trl_sft_kit.stage import TRLSFTConfig, TRLSFTStage

REPO = Path(__file__).resolve().parent.parent
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"

PRELUDE = textwrap.dedent(
    """
    import json, re, sys
    from pathlib import Path

    HIDDEN = set(json.loads(sys.argv[1]))
    TMP = Path(sys.argv[2])
    CHAT = sys.argv[3]
    NOWHERE = str(TMP / "no-such-model")
    HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "bitsandbytes")


    def normalise(name):
        return re.sub(r"[-_.]+", "_", name).lower()


    HIDDEN_DISTRIBUTIONS = {normalise(name) for name in HIDDEN}


    class Hidden:
        # Wraps one import finder so that the hidden packages look uninstalled.
        def __init__(self, finder):
            self.finder = finder

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in HIDDEN:
                return None
            find_spec = getattr(self.finder, "find_spec", None)
            return None if find_spec is None else find_spec(name, path, target)

        def find_distributions(self, *args, **kwargs):  # importlib.metadata asks the finders too
            find = getattr(self.finder, "find_distributions", None)
            for dist in [] if find is None else find(*args, **kwargs):
                if normalise(dist.metadata["Name"] or "") not in HIDDEN_DISTRIBUTIONS:
                    yield dist

        def invalidate_caches(self):
            getattr(self.finder, "invalidate_caches", lambda: None)()


    sys.meta_path[:] = [Hidden(finder) for finder in sys.meta_path]


    def outcome(label, call):
        try:
            call()
        except Exception as exc:
            result = {
                "error": [kind.__name__ for kind in type(exc).__mro__],
                "message": str(exc),
                "package": getattr(exc, "package", None),
                "extra": getattr(exc, "extra", None),
                "cause": type(exc.__cause__).__name__ if exc.__cause__ is not None else None,
            }
        else:
            result = {"error": None}
        result["label"] = label
        result["heavy"] = sorted(name for name in HEAVY if name in sys.modules)
        print(json.dumps(result))
    """
)


def run_hidden(hidden: list[str], body: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Run ``body`` in a fresh interpreter with ``hidden`` packages uninstalled; its outcomes by label."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body), json.dumps(hidden), str(tmp_path), str(CHAT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {line["label"]: line for line in lines}


def test_the_simulation_really_hides_a_package(tmp_path: Path) -> None:
    outcomes = run_hidden(
        ["yaml", "pyyaml"],
        """
        import importlib.metadata, importlib.util
        assert importlib.util.find_spec("yaml") is None
        outcome("import", lambda: __import__("yaml"))
        outcome("metadata", lambda: importlib.metadata.version("PyYAML"))
        outcome("other metadata", lambda: importlib.metadata.version("attrs"))
        """,
        tmp_path,
    )
    assert "ModuleNotFoundError" in outcomes["import"]["error"]
    assert "PackageNotFoundError" in outcomes["metadata"]["error"]
    assert outcomes["other metadata"]["error"] is None


@pytest.mark.parametrize("package", ["trl", "peft", "torch"])
def test_without_a_required_package_the_kit_imports_and_compile_names_the_fix(
    tmp_path: Path, package: str
) -> None:
    outcomes = run_hidden(
        [package],
        """
        import trl_sft_kit
        from trl_sft_kit import SFTRecipe
        from trl_sft_kit.stage import TRLSFTConfig, TRLSFTStage

        recipe = SFTRecipe().model(NOWHERE).dataset(CHAT).lora(r=4).packing("ffd")
        outcome("validate", recipe.validate)
        outcome("explain", recipe.explain)
        config = TRLSFTConfig(stage_name="trl_sft", output_dir=str(TMP / "out"), dataset_name_or_path=CHAT)
        outcome("config", config.validate)
        outcome("compile", recipe.compile)
        outcome("stage", lambda: TRLSFTStage(config))
        """,
        tmp_path,
    )
    for label in ("validate", "explain", "config"):
        assert outcomes[label]["error"] is None, outcomes[label]
    for label in ("compile", "stage"):
        got = outcomes[label]
        assert "MissingDependencyError" in got["error"] and "ImportError" in got["error"], got
        assert got["package"] == package and got["extra"] is None
        assert f"needs the {package!r} package, which is not installed" in got["message"]
        assert f"pip install '{package}" in got["message"]
        assert got["heavy"] == [], "a missing package must be found before anything heavy is imported"


def test_quantization_without_bitsandbytes_names_the_extra_or_the_setting(tmp_path: Path) -> None:
    outcomes = run_hidden(
        ["bitsandbytes"],
        """
        from trl_sft_kit import SFTRecipe
        from trl_sft_kit.stage import TRLSFTConfig, TRLSFTStage

        recipe = SFTRecipe().model(NOWHERE).dataset(CHAT).lora(r=4).quantize("4bit")
        outcome("validate", recipe.validate)
        outcome("compile", recipe.compile)
        legacy = SFTRecipe.from_dict({"model_name_or_path": NOWHERE, "dataset_name_or_path": CHAT,
                                      "lora_r": 4, "use_8bit": True})
        outcome("legacy", legacy.compile)
        config = TRLSFTConfig(dataset_name_or_path=CHAT, use_4bit=True)
        outcome("stage", lambda: TRLSFTStage(config))
        """,
        tmp_path,
    )
    assert outcomes["validate"]["error"] is None  # the recipe is right; this machine lacks a package
    for label in ("compile", "legacy", "stage"):
        got = outcomes[label]
        assert "MissingDependencyError" in got["error"], got
        assert got["package"] == "bitsandbytes" and got["extra"] == "quantization"
        assert "pip install 'trl-sft-kit[quantization]'" in got["message"]
        assert "drop .quantize()" in got["message"] and "use_4bit / use_8bit: false" in got["message"]
        assert got["heavy"] == []


def test_liger_without_kernels_names_the_extra_or_the_setting(tmp_path: Path) -> None:
    outcomes = run_hidden(
        ["kernels"],
        """
        from trl_sft_kit import SFTRecipe
        from trl_sft_kit.stage import TRLSFTConfig, TRLSFTStage

        outcome("compile", SFTRecipe().model(NOWHERE).dataset(CHAT).liger().compile)
        config = TRLSFTConfig(dataset_name_or_path=CHAT, use_liger_kernel=True)
        outcome("stage", lambda: TRLSFTStage(config))
        """,
        tmp_path,
    )
    for label in ("compile", "stage"):
        got = outcomes[label]
        assert "MissingDependencyError" in got["error"], got
        assert got["package"] == "kernels" and got["extra"] == "liger"
        assert "pip install 'trl-sft-kit[liger]'" in got["message"]
        assert "drop .liger()" in got["message"] and "use_liger_kernel: false" in got["message"]
        assert got["heavy"] == []


def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_liger_without_a_gpu_names_the_setting_to_drop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With `kernels` present and liger-kernel absent (the hub kernels route needs only the former),
    but no CUDA GPU, the error says what to drop."""
    import torch

    from trl_sft_kit.compile import _import_backend

    _import_backend()  # import TRL and the rest now
    assert importlib.util.find_spec("kernels") is not None
    assert importlib.util.find_spec("liger_kernel") is None  # not installed, and not asked for
    _online(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = SFTRecipe().model(tmp_path / "no-such-model").dataset(CHAT).lora(r=4).liger()
    with pytest.raises(RecipeError, match=r"needs a CUDA GPU") as caught:
        recipe.compile()
    assert "Drop .liger()" in str(caught.value) and "use_liger_kernel: false" in str(caught.value)
    with pytest.raises(RecipeError, match=r"use_liger_kernel: false"):
        TRLSFTStage(TRLSFTConfig(dataset_name_or_path=str(CHAT), use_liger_kernel=True))


def test_liger_offline_is_refused_before_anything_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Hub kernels download at model load: offline, compile() says so before a tokenizer or data loads."""
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # so only the offline check can refuse
    data = tmp_path / "data.jsonl"  # validate() checks it exists; it is never read (a bad row would say so)
    data.write_text('{"text": ""}\n', encoding="utf-8")
    recipe = SFTRecipe().model(tmp_path / "no-such-model").dataset(data).lora(r=4).liger()
    with pytest.raises(RecipeError, match=r"loads its kernels from the Hugging Face Hub") as caught:
        recipe.compile()
    assert "HF_HUB_OFFLINE" in str(caught.value) and "drop .liger()" in str(caught.value)


BROKEN_TRL = {
    "fails-on-import": (
        "raise ImportError(\"cannot import name 'is_torch_npu_available' from 'transformers.utils'\")\n"
    ),
    "fails-on-first-use": (
        "def __getattr__(name):\n"
        "    raise RuntimeError(\n"
        "        f'Failed to import trl.trainer.{name} because of the following error: '\n"
        "        \"No module named 'transformers.modeling_layers'\"\n"
        "    )\n"
    ),
}


def test_a_broken_trl_gives_one_message_with_the_fix(tmp_path: Path) -> None:
    for name, source in BROKEN_TRL.items():
        package = tmp_path / name / "trl"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(source, encoding="utf-8")
    outcomes = run_hidden(
        [],
        f"""
        import importlib
        from trl_sft_kit import SFTRecipe
        from trl_sft_kit.stage import TRLSFTConfig, TRLSFTStage

        recipe = SFTRecipe().model(NOWHERE).dataset(CHAT).lora(r=4)
        config = TRLSFTConfig(dataset_name_or_path=CHAT)
        for name in {sorted(BROKEN_TRL)!r}:
            sys.path.insert(0, str(TMP / name))
            for label, call in (("compile", recipe.compile), ("stage", lambda: TRLSFTStage(config))):
                for module in [m for m in sys.modules if m == "trl" or m.startswith("trl.")]:
                    del sys.modules[module]  # each attempt meets the broken TRL for the first time
                importlib.invalidate_caches()
                outcome(name + ":" + label, call)
            sys.path.remove(str(TMP / name))
        """,
        tmp_path,
    )
    assert len(outcomes) == 2 * len(BROKEN_TRL)
    for label, got in outcomes.items():
        assert "BackendError" in got["error"] and "MissingDependencyError" not in got["error"], (label, got)
        assert got["message"].startswith("trl is installed"), got["message"]
        assert "but fails to import" in got["message"]
        assert "pip install --force-reinstall 'trl" in got["message"]
        assert got["cause"] in ("ImportError", "RuntimeError")
        assert "transformers" in got["message"]  # the underlying reason is kept in the one message
        assert {"torch", "transformers", "peft"} <= set(got["heavy"])  # imported in order, up to TRL


def test_the_kit_raises_the_documented_types() -> None:
    assert issubclass(MissingDependencyError, BackendError) and issubclass(
        MissingDependencyError, ImportError
    )
