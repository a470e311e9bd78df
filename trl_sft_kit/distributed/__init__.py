"""Training in several processes: the trainer's settings for DDP, FSDP and DeepSpeed, and the launcher.

A recipe records its choice with ``.distributed("ddp" | "fsdp" | "deepspeed_zero2" | "deepspeed_zero3")``
and runs unchanged under ``torchrun`` or ``accelerate launch``:

* ``sftconfig_fields`` gives the ``SFTConfig`` fields for the choice (``fsdp`` / ``fsdp_config``,
  ``deepspeed``, ``ddp_*``). When ``accelerate launch`` already set FSDP or DeepSpeed up from its own
  configuration, those are left to it, so the processes are never configured twice.
* ``launch`` starts the processes for a recipe file: ``accelerate launch`` with a configuration written
  from the recipe (``accelerate_config``) on a machine with CUDA GPUs, ``torchrun`` on one without (there
  ``accelerate launch --cpu`` starts a single process unless MPI is installed). Each process runs
  ``python -m trl_sft_kit.distributed RECIPE [--set KEY=VALUE ...]``, which is ``trl-sft-kit train`` with
  the output of every process but the main one silenced.

Only the main process writes the adapter, the model card, ``run.json`` and the logs (the trainer and
``Compiled.train`` see to that); with the preprocessing cache on, the main process prepares the data
first and the others load it from the cache.

Several machines: run the same ``launch`` (or ``trl-sft-kit train RECIPE --launch``) on each, with
``num_machines``, its own ``machine_rank`` (0 on the main machine) and the main machine's address as
``main_process_ip``.

The package's modules: ``trainer_settings`` (the ``SFTConfig`` fields), ``accelerate_files`` (the
``accelerate`` configuration and the files written from it), ``launching`` (the launch plan and ``launch``),
``environment`` (world size, what the launcher set up, the backend installed) and ``worker`` (one launched
process, run by ``python -m trl_sft_kit.distributed``).
"""

from trl_sft_kit.distributed.accelerate_files import DEFAULT_PORT, accelerate_config, write_launch_files
from trl_sft_kit.distributed.environment import launched_plugin, require_backend, world_size
from trl_sft_kit.distributed.launching import (
    LAUNCHERS,
    WORKER,
    LaunchOptions,
    LaunchPlan,
    launch,
    launch_plan,
)
from trl_sft_kit.distributed.trainer_settings import deepspeed_config, fsdp_config, sftconfig_fields
from trl_sft_kit.distributed.worker import main

__all__ = [
    "DEFAULT_PORT",
    "LAUNCHERS",
    "WORKER",
    "LaunchOptions",
    "LaunchPlan",
    "accelerate_config",
    "deepspeed_config",
    "fsdp_config",
    "launch",
    "launch_plan",
    "launched_plugin",
    "main",
    "require_backend",
    "sftconfig_fields",
    "world_size",
    "write_launch_files",
]
