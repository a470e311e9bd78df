"""Building, checking, explaining and serialising a recipe imports none of torch, transformers, trl, datasets.

Each check runs in a fresh interpreter, since this test process may already hold those modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "trl", "datasets")

PRELUDE = textwrap.dedent(
    """
    import json, sys
    HEAVY = ("torch", "transformers", "trl", "datasets")

    def report(step):
        loaded = sorted(name for name in HEAVY if name in sys.modules)
        print(json.dumps({"step": step, "heavy": loaded}))
    """
)

SCRIPTS = {
    "import": """
        import trl_sft_kit
        report("import")
    """,
    "recipe": """
        from pathlib import Path
        from trl_sft_kit import SFTRecipe
        from trl_sft_kit.formats import available_formats, format_names
        from trl_sft_kit.packing import packer_names

        text_file = Path(sys.argv[1]) / "notes.jsonl"
        text_file.write_text('{"text": "hello"}\\n{"text": "world"}\\n', encoding="utf-8")
        rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
        recipe = (
            SFTRecipe()
            .model("Qwen/Qwen2.5-0.5B-Instruct", dtype="bfloat16")
            .dataset(rows, format="messages")
            .lora(r=8, use_dora=True, modules_to_save=["lm_head"])
            .quantize("4bit")
            .packing("bfd")
            .neftune(5.0)
            .liger()
            .loss("assistant_only")
            .chat_template("qwen2_5")
            .tokens(eos="<|im_end|>")
            .training(epochs=1, lr="5e-5", lr_scheduler_kwargs={"min_lr": 1e-6})
        )
        report("build")
        recipe.validate()
        report("validate")
        for loss in ("completion_only", "assistant_only"):
            for source in (text_file, [{"text": "plain"}], "corpus.txt"):
                try:
                    SFTRecipe().dataset(source).loss(loss).validate()
                except Exception as exc:
                    assert type(exc).__name__ == "RecipeError", exc
                else:
                    raise AssertionError(f"{loss} with {source} validated")
        report("validate plain text")
        text = recipe.explain()
        assert "SFTConfig fields:" in text and "Qwen/Qwen2.5-0.5B-Instruct" in text
        report("explain")
        assert SFTRecipe.from_yaml(recipe.to_yaml()) == recipe
        assert SFTRecipe.from_dict(recipe.to_dict()) == recipe
        path = Path(sys.argv[1]) / "recipe.yaml"
        recipe.to_yaml(path)
        assert SFTRecipe.from_yaml(path) == recipe
        report("yaml")
        legacy = SFTRecipe.from_yaml(
            "stage_configs:\\n  trl_sft:\\n    dataset_name_or_path: d.jsonl\\n    learning_rate: 5e-5\\n"
            "    lora_r: 8\\n    use_4bit: true\\n    packing: true\\n"
        )
        assert legacy.training_fields["learning_rate"] == 5e-5
        report("legacy yaml")
        assert available_formats() and format_names() and packer_names()
        report("registries")
    """,
}


def run_script(body: str, tmp_path: Path) -> list[dict[str, object]]:
    """Run ``body`` after ``PRELUDE`` in a fresh interpreter; return what its ``report()`` calls printed."""
    source = PRELUDE + textwrap.dedent(body)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-c", source, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_no_heavy_imports(name: str, tmp_path: Path) -> None:
    steps = run_script(SCRIPTS[name], tmp_path)
    assert steps, "the script reported nothing"
    for step in steps:
        assert step["heavy"] == [], f"after {step['step']}: {step['heavy']} imported"
    if name == "recipe":
        assert [step["step"] for step in steps][-1] == "registries"


def test_the_check_itself_sees_a_heavy_import(tmp_path: Path) -> None:
    """The subprocess harness does notice a heavy import (so the test above can fail)."""
    (step,) = run_script("sys.modules['datasets'] = json\nreport('control')\n", tmp_path)
    assert step["heavy"] == ["datasets"]
