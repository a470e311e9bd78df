"""The ``accelerate`` configuration for a recipe's choice, and the files ``accelerate launch`` reads.

``accelerate_config`` is what ``accelerate config`` would write; ``write_launch_files`` writes it as
``accelerate.yaml``, with ``deepspeed.json`` beside it for DeepSpeed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trl_sft_kit.distributed.trainer_settings import deepspeed_config, fsdp_config
from trl_sft_kit.specs import DistributedSpec

__all__ = ["DEFAULT_PORT", "accelerate_config", "write_launch_files"]

DEFAULT_PORT = 29500
"""The main process's port on a multi-machine run (``torchrun`` and ``accelerate``'s own default)."""


def accelerate_config(
    spec: DistributedSpec,
    *,
    num_processes: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    main_process_ip: str | None = None,
    main_process_port: int | None = None,
    deepspeed_config_file: str | None = None,
) -> dict[str, Any]:
    """An ``accelerate`` configuration (what ``accelerate config`` writes) matching ``spec``.

    Args:
        spec: the recipe's choice.
        num_processes: processes on each machine (the configuration holds the total).
        num_machines: machines taking part.
        machine_rank: this machine's rank (0 on the main machine).
        main_process_ip: the main machine's address, for several machines.
        main_process_port: the main process's port.
        deepspeed_config_file: for DeepSpeed, the JSON file holding ``deepspeed_config(spec)``.

    >>> accelerate_config(DistributedSpec("ddp"), num_processes=8)["distributed_type"]
    'MULTI_GPU'
    """
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "mixed_precision": "no",  # the trainer's bf16 / fp16 fields decide
        "use_cpu": False,
        "num_processes": num_processes * num_machines,
        "num_machines": num_machines,
        "machine_rank": machine_rank,
        "gpu_ids": "all",
        "rdzv_backend": "static",
        "same_network": True,
        "downcast_bf16": "no",
    }
    if num_machines > 1:
        config["main_process_ip"] = main_process_ip
        config["main_process_port"] = main_process_port or DEFAULT_PORT
    elif main_process_port is not None:
        config["main_process_port"] = main_process_port
    if spec.kind == "fsdp":
        fsdp = fsdp_config(spec)
        config["distributed_type"] = "FSDP"
        names = {"cpu_offload": "fsdp_offload_params"}
        config["fsdp_config"] = {names.get(key, f"fsdp_{key}"): value for key, value in fsdp.items()}
    elif spec.is_deepspeed:
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {
            "deepspeed_config_file": deepspeed_config_file or "deepspeed.json",
            "zero3_init_flag": spec.zero_stage == 3,
        }
    return config


def write_launch_files(
    spec: DistributedSpec,
    folder: str | os.PathLike[str],
    *,
    num_processes: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    main_process_ip: str | None = None,
    main_process_port: int | None = None,
) -> tuple[Path, ...]:
    """Write ``accelerate.yaml`` (and ``deepspeed.json`` for DeepSpeed) into ``folder``; return the paths."""
    from trl_sft_kit.config import dump_yaml

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    deepspeed_file = None
    if spec.is_deepspeed:
        deepspeed_file = target / "deepspeed.json"
        deepspeed_file.write_text(json.dumps(deepspeed_config(spec), indent=2) + "\n", encoding="utf-8")
    config = accelerate_config(
        spec,
        num_processes=num_processes,
        num_machines=num_machines,
        machine_rank=machine_rank,
        main_process_ip=main_process_ip,
        main_process_port=main_process_port,
        deepspeed_config_file=str(deepspeed_file) if deepspeed_file is not None else None,
    )
    accelerate_file = target / "accelerate.yaml"
    accelerate_file.write_text(dump_yaml(config), encoding="utf-8")
    files.append(accelerate_file)
    if deepspeed_file is not None:
        files.append(deepspeed_file)
    return tuple(files)
