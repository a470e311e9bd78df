"""From a recipe to a real ``trl.SFTConfig`` and a ready ``trl.SFTTrainer``.

A thin mapping: the tokenizer is loaded and given its template and special tokens, the data is prepared
(before the model, so data errors never wait on a model load), then the config, the model, the PEFT and
quantization configs, and the trainer. Failures of the libraries underneath become ``BackendError``.
Nothing the caller passed in is mutated, except a loaded model, which is trained in place.

One idea a module: ``mapping`` (which model, and the ``SFTConfig`` keyword arguments: pure),
``requirements`` (the packages that must import, before anything loads), ``build`` (``compile_recipe``:
tokenizer, data, config, model, LoRA, trainer) and ``compiled`` (``Compiled`` and its ``train()``).
"""

from trl_sft_kit.compile.build import _build_config as _build_config
from trl_sft_kit.compile.build import _quantization_config as _quantization_config
from trl_sft_kit.compile.build import compile_recipe
from trl_sft_kit.compile.compiled import Compiled
from trl_sft_kit.compile.compiled import run_logger as run_logger
from trl_sft_kit.compile.mapping import (
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_DIR,
    config_kwargs,
    fallback_model_note,
    resolve_model,
)
from trl_sft_kit.compile.requirements import _import_backend as _import_backend
from trl_sft_kit.tokenizer import MODEL_ENV

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_OUTPUT_DIR",
    "MODEL_ENV",
    "Compiled",
    "compile_recipe",
    "config_kwargs",
    "fallback_model_note",
    "resolve_model",
]
