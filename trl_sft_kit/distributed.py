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
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.errors import MissingDependencyError, RecipeError, SFTKitError
from trl_sft_kit.specs import DistributedSpec, thaw

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe

__all__ = [
    "DEFAULT_PORT",
    "LAUNCHERS",
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

LAUNCHERS = ("auto", "accelerate", "torchrun")
"""How ``launch`` starts processes: ``auto`` picks ``accelerate`` with CUDA GPUs, ``torchrun`` without."""

DEFAULT_PORT = 29500
"""The main process's port on a multi-machine run (``torchrun`` and ``accelerate``'s own default)."""

WORKER = "trl_sft_kit.distributed"
"""The module each launched process runs."""


def world_size() -> int:
    """How many processes take part in this run (``WORLD_SIZE``, set by torchrun and accelerate), else 1."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def launched_plugin() -> str | None:
    """``"fsdp"`` or ``"deepspeed"`` when ``accelerate launch`` set it up from its own configuration."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "deepspeed"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    return None


def require_backend(spec: DistributedSpec | None) -> None:
    """Refuse, before anything loads, a DeepSpeed recipe on a machine without the ``deepspeed`` package.

    Raises:
        MissingDependencyError: naming ``pip install deepspeed`` and the other ways out.
    """
    if spec is None or not spec.is_deepspeed:
        return
    try:
        found = importlib.util.find_spec("deepspeed") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingDependencyError(
            f"distributed({spec.kind!r}) needs the 'deepspeed' package, which is not installed. Install it "
            "with pip install deepspeed (on a machine with CUDA and its compiler), or choose "
            "distributed('fsdp'), which needs nothing more than PyTorch.",
            package="deepspeed",
        )


# ------------------------------------------------------------------------------------------ trainer settings


def fsdp_config(spec: DistributedSpec) -> dict[str, Any]:
    """The ``SFTConfig.fsdp_config`` for FSDP2 with the spec's options (transformers' key names).

    Activation checkpointing is FSDP's own (``activation_checkpointing: true``) unless the options say
    otherwise, since the trainer's flag adds a redundant all-gather under FSDP.

    >>> fsdp_config(DistributedSpec("fsdp", options={"cpu_offload": True}))["cpu_offload"]
    True
    """
    options = thaw(dict(spec.options))
    config: dict[str, Any] = {
        "version": 2,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "state_dict_type": "FULL_STATE_DICT",
        "reshard_after_forward": True,
        "cpu_ram_efficient_loading": True,
        "activation_checkpointing": True,
    }
    config.update({key: value for key, value in options.items() if key not in ("backend", "timeout")})
    return config


def deepspeed_config(spec: DistributedSpec) -> dict[str, Any]:
    """The DeepSpeed configuration for a ZeRO stage: ``"auto"`` wherever the trainer's settings decide.

    Batch sizes, gradient accumulation, clipping and precision follow the ``SFTConfig`` fields (the
    ``"auto"`` values of transformers' DeepSpeed integration); ``offload_optimizer`` / ``offload_param``
    move optimizer state or (ZeRO-3) parameters to ``"cpu"`` or ``"nvme"``; ``config`` is merged on top.

    >>> deepspeed_config(DistributedSpec("deepspeed_zero3"))["zero_optimization"]["stage"]
    3
    """
    stage = spec.zero_stage
    if stage is None:
        raise RecipeError(f"distributed({spec.kind!r}) is not a DeepSpeed kind.")
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": "auto",
                "stage3_param_persistence_threshold": "auto",
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
    for option, key in (("offload_optimizer", "offload_optimizer"), ("offload_param", "offload_param")):
        device = spec.options.get(option)
        if device is not None:
            zero[key] = {"device": device, "pin_memory": True}
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
    }
    extra = spec.options.get("config")
    return _merged(config, thaw(dict(extra))) if extra else config


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def sftconfig_fields(
    spec: DistributedSpec, *, launched: str | None = None, user_fields: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``SFTConfig`` fields that set the trainer up for ``spec``.

    Args:
        spec: the recipe's choice.
        launched: what ``accelerate launch`` already set up (``launched_plugin()``): FSDP or DeepSpeed
            settings are then left to it.
        user_fields: the recipe's own training fields (``activation_checkpointing`` set there is kept).

    >>> sftconfig_fields(DistributedSpec("ddp", options={"find_unused_parameters": False}))
    {'ddp_find_unused_parameters': False}
    """
    fields: dict[str, Any] = {}
    options = spec.options
    if "backend" in options:
        fields["ddp_backend"] = options["backend"]
    if "timeout" in options:
        fields["ddp_timeout"] = options["timeout"]
    if spec.kind == "ddp":
        for option in ("find_unused_parameters", "static_graph", "bucket_cap_mb", "broadcast_buffers"):
            if option in options:
                fields[f"ddp_{option}"] = options[option]
    elif spec.kind == "fsdp" and launched != "fsdp":
        config = fsdp_config(spec)
        if "activation_checkpointing" in (user_fields or {}) and "activation_checkpointing" not in options:
            config["activation_checkpointing"] = False  # the user chose the trainer's own
        fields["fsdp"] = True
        fields["fsdp_config"] = config
        if config["activation_checkpointing"]:
            fields["activation_checkpointing"] = False  # FSDP's own checkpointing replaces the trainer's
    elif spec.is_deepspeed and launched != "deepspeed":
        fields["deepspeed"] = deepspeed_config(spec)
    return fields


# ------------------------------------------------------------------------------------------ accelerate config


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


# ------------------------------------------------------------------------------------------ launching


@attrs.frozen
class LaunchPlan:
    """How ``launch`` starts the processes: the command, extra environment, and the files it wrote.

    ``str(plan)`` is the command as one shell line.
    """

    launcher: str
    command: tuple[str, ...]
    env: dict[str, str] = attrs.field(factory=dict)
    num_processes: int = 1
    num_machines: int = 1
    files: tuple[Path, ...] = ()

    def __str__(self) -> str:
        return shlex.join(self.command)


def launch_plan(
    spec: DistributedSpec | None,
    recipe_path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    num_processes: int | None = None,
    num_machines: int | None = None,
    machine_rank: int = 0,
    main_process_ip: str | None = None,
    main_process_port: int | None = None,
    launcher: str = "auto",
    gpus: int | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    train_args: Sequence[str] = (),
    python: str = sys.executable,
) -> LaunchPlan:
    """The command that starts the recipe's processes, and the ``accelerate`` files it needs (written).

    Arguments left None come from the spec (``.distributed(num_processes=..., num_machines=...)``), then
    from the machine (one process per GPU). ``train_args`` go to each process's ``trl-sft-kit train``
    after the recipe and overrides (``["--overwrite"]``).

    Raises:
        RecipeError: no process count on a machine without GPUs, a multi-machine run without
            ``main_process_ip``, DeepSpeed without GPUs, or an unknown launcher.
    """
    spec = spec or DistributedSpec("ddp")
    if launcher not in LAUNCHERS:
        raise RecipeError(f"launcher must be one of {', '.join(map(repr, LAUNCHERS))} (got {launcher!r}).")
    if gpus is None:
        gpus = _cuda_devices()
    processes = num_processes or spec.num_processes or gpus
    if not processes:
        raise RecipeError(
            "this machine has no GPU, so the number of processes must be given: "
            ".distributed('ddp', num_processes=2) in the recipe, or --num-processes 2."
        )
    machines = num_machines or spec.num_machines
    if machines > 1 and not main_process_ip:
        raise RecipeError(
            f"a run on {machines} machines needs the main machine's address: pass --main-process-ip "
            "(and --machine-rank, 0 on the main machine)."
        )
    if not 0 <= machine_rank < machines:
        raise RecipeError(f"machine_rank must be between 0 and {machines - 1} (got {machine_rank}).")
    chosen = launcher if launcher != "auto" else ("accelerate" if gpus else "torchrun")
    if spec.is_deepspeed and not gpus:
        raise RecipeError(
            f"distributed({spec.kind!r}) trains on CUDA GPUs and this machine has none; use "
            "distributed('ddp') to train on CPUs."
        )
    worker = ["-m", WORKER, os.fspath(recipe_path)]
    for item in overrides:
        worker += ["--set", item]
    worker += list(train_args)
    env: dict[str, str] = {}
    if not gpus:
        env["ACCELERATE_USE_CPU"] = "true"  # several CPU processes: gloo, as `accelerate launch --cpu` would
    if chosen == "torchrun":
        command = [python, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
        if machines > 1:
            command += ["--nnodes", str(machines), "--node_rank", str(machine_rank)]
            command += ["--master_addr", str(main_process_ip)]
            command += ["--master_port", str(main_process_port or DEFAULT_PORT)]
        else:
            command += ["--standalone"]  # a free port on this machine
        return LaunchPlan("torchrun", (*command, *worker), env, processes, machines)
    folder = (
        Path(config_dir) if config_dir is not None else Path(tempfile.mkdtemp(prefix="trl-sft-kit-launch-"))
    )
    files = write_launch_files(
        spec,
        folder,
        num_processes=processes,
        num_machines=machines,
        machine_rank=machine_rank,
        main_process_ip=main_process_ip,
        main_process_port=main_process_port,
    )
    command = [python, "-m", "accelerate.commands.launch", "--config_file", str(files[0]), *worker]
    return LaunchPlan("accelerate", tuple(command), env, processes, machines, files)


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


def launch(
    recipe_path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    num_processes: int | None = None,
    num_machines: int | None = None,
    machine_rank: int = 0,
    main_process_ip: str | None = None,
    main_process_port: int | None = None,
    launcher: str = "auto",
    config_dir: str | os.PathLike[str] | None = None,
    train_args: Sequence[str] = (),
    dry_run: bool = False,
) -> int:
    """Train the recipe in a YAML file in several processes; returns the launcher's exit code.

    The recipe is read and checked first (with the ``--set KEY=VALUE`` overrides), so a mistake is
    reported before any process starts; then the command of ``launch_plan`` runs, its output passing
    through. What ``.distributed(...)`` says (kind, processes, machines) applies unless an argument here
    says otherwise.

    Args:
        recipe_path: the recipe YAML (the kit's layout or a flat stage config).
        overrides: ``KEY=VALUE`` settings, as ``trl-sft-kit train --set`` takes them.
        num_processes: processes on this machine (default: the recipe's, else one per GPU).
        num_machines: machines taking part (default: the recipe's, else 1).
        machine_rank: this machine's rank, 0 on the main machine.
        main_process_ip: the main machine's address (several machines).
        main_process_port: the main process's port (default 29500 on several machines).
        launcher: ``"auto"``, ``"accelerate"`` or ``"torchrun"``.
        config_dir: where to write the ``accelerate`` configuration (default: a new temporary folder).
        train_args: more ``trl-sft-kit train`` arguments for every process (``["--resume"]``).
        dry_run: print the command and return 0 without running it.

    Raises:
        RecipeError: the recipe cannot work, or the launch settings are incomplete.
        MissingDependencyError: DeepSpeed is asked for and not installed.
    """
    recipe = _read_recipe(recipe_path, overrides)
    recipe.validate()
    require_backend(recipe.distributed_spec)
    plan = launch_plan(
        recipe.distributed_spec,
        recipe_path,
        overrides,
        num_processes=num_processes,
        num_machines=num_machines,
        machine_rank=machine_rank,
        main_process_ip=main_process_ip,
        main_process_port=main_process_port,
        launcher=launcher,
        config_dir=config_dir,
        train_args=train_args,
    )
    kind = recipe.distributed_spec.kind if recipe.distributed_spec is not None else "ddp"
    print(
        f"launching {plan.num_processes} process(es) on each of {plan.num_machines} machine(s), {kind}, "
        f"with {plan.launcher}:\n  {plan}",
        flush=True,
    )
    for file in plan.files:
        print(f"  configuration: {file}", flush=True)
    if dry_run:
        return 0
    done = subprocess.run(list(plan.command), env={**os.environ, **plan.env}, check=False)
    return int(done.returncode)


def _read_recipe(recipe_path: str | os.PathLike[str], overrides: Sequence[str]) -> SFTRecipe:
    from trl_sft_kit.cli_overrides import apply_overrides
    from trl_sft_kit.config import recipe_from_dict
    from trl_sft_kit.config_paths import read_recipe_file
    from trl_sft_kit.yaml_safe import yaml_value

    pairs: list[tuple[str, Any]] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"an override is KEY=VALUE (got {item!r}).")
        pairs.append((key.strip(), yaml_value(value, source=f"the override {key.strip()}")))
    data = read_recipe_file(recipe_path)
    return recipe_from_dict(apply_overrides(data, pairs) if pairs else data)


def _cuda_devices() -> int:
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


# ------------------------------------------------------------------------------------------ worker


def main(argv: Sequence[str] | None = None) -> int:
    """One launched process: ``trl-sft-kit train`` with its arguments, quiet unless it is the main process.

    The main process (rank 0) says how many processes took part; the others print nothing to stdout
    (their errors still reach stderr, marked with their rank).
    """
    import contextlib
    import io

    from trl_sft_kit.cli import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    rank = int(os.environ.get("RANK", "0") or 0)
    if rank == 0:
        print(f"trl-sft-kit: {world_size()} training process(es) started", flush=True)
        return cli_main(["train", *args])
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink):
            return cli_main(["train", *args])
    except SFTKitError as exc:  # pragma: no cover - the CLI prints its own errors
        print(f"error (process {rank}): {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
