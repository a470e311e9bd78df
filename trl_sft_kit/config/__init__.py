"""Recipes to and from plain data and YAML, including the flat keys of the older SFT pipeline stage.

The kit's own layout has one section per option:

```yaml
model: {source: Qwen/Qwen2.5-0.5B-Instruct}
dataset: {source: chats.jsonl}
lora: {r: 16}
packing: ffd
training: {num_train_epochs: 3}
```

A mixture lists its sources, the first being ``.dataset()``'s and the others ``.mix()``'s:

```yaml
dataset:
  - {source: chats.jsonl, eval: 0.05}
  - {source: instructions.jsonl, weight: 0.3}
distributed: {kind: fsdp, num_processes: 8, cpu_offload: true}
cache: false
```

A flat stage config (``dataset_name_or_path``, ``max_seq_length``, ``lora_r``, ``use_4bit``, ...), alone or
nested as ``stage_configs: {trl_sft: {...}}``, is read too, so existing pipeline configs migrate unchanged.
Any ``SFTConfig`` field may also stand at the top level of a flat config.

The package's modules: ``writing`` (recipe to plain data), ``reading`` (plain data to a recipe), ``legacy``
(the flat stage keys), ``values`` (one config value checked) and ``loader`` (YAML files and text).
"""

from trl_sft_kit.config.legacy import LEGACY_KEYS
from trl_sft_kit.config.loader import dump_yaml, load_yaml, names_file
from trl_sft_kit.config.reading import SECTIONS, recipe_from_dict
from trl_sft_kit.config.writing import recipe_to_dict

__all__ = [
    "LEGACY_KEYS",
    "SECTIONS",
    "dump_yaml",
    "load_yaml",
    "names_file",
    "recipe_from_dict",
    "recipe_to_dict",
]
