"""Starting a recipe's processes: the launch plan (``accelerate launch`` or ``torchrun``) and ``launch``.

With CUDA GPUs the processes start under ``accelerate launch`` with a configuration written from the recipe
(``write_launch_files``); without, under ``torchrun`` (there ``accelerate launch --cpu`` starts a single
process unless MPI is installed). Each process runs ``python -m trl_sft_kit.distributed`` (``worker``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import attrs

from trl_sft_kit.distributed.accelerate_files import DEFAULT_PORT, write_launch_files
from trl_sft_kit.distributed.environment import require_backend
from trl_sft_kit.errors import RecipeError
from trl_sft_kit.specs import DistributedSpec

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["LAUNCHERS", "WORKER", "LaunchOptions", "LaunchPlan", "launch", "launch_plan"]

LAUNCHERS = ("auto", "accelerate", "torchrun")
"""How ``launch`` starts processes: ``auto`` picks ``accelerate`` with CUDA GPUs, ``torchrun`` without."""


WORKER = "trl_sft_kit.distributed"
"""The module each launched process runs."""


class LaunchOptions(TypedDict, total=False):
    """The settings ``launch`` passes on to ``launch_plan``, whose signature holds their defaults."""

    num_processes: int | None
    num_machines: int | None
    machine_rank: int
    main_process_ip: str | None
    main_process_port: int | None
    launcher: str
    config_dir: str | os.PathLike[str] | None
    train_args: Sequence[str]


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


def launch(
    recipe_path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    dry_run: bool = False,
    **options: Unpack[LaunchOptions],
) -> int:
    """Train the recipe in a YAML file in several processes; returns the launcher's exit code.

    The recipe is read and checked first (with the ``--set KEY=VALUE`` overrides), so a mistake is
    reported before any process starts; then the command of ``launch_plan`` runs, its output passing
    through. What ``.distributed(...)`` says (kind, processes, machines) applies unless an argument here
    says otherwise.

    Args:
        recipe_path: the recipe YAML (the kit's layout or a flat stage config).
        overrides: ``KEY=VALUE`` settings, as ``trl-sft-kit train --set`` takes them.
        dry_run: print the command and return 0 without running it.
        **options: the ``LaunchOptions`` below, passed on to ``launch_plan``.

    Keyword Args:
        num_processes: processes on this machine (default: the recipe's, else one per GPU).
        num_machines: machines taking part (default: the recipe's, else 1).
        machine_rank: this machine's rank, 0 on the main machine.
        main_process_ip: the main machine's address (several machines).
        main_process_port: the main process's port (default 29500 on several machines).
        launcher: ``"auto"``, ``"accelerate"`` or ``"torchrun"``.
        config_dir: where to write the ``accelerate`` configuration (default: a new temporary folder).
        train_args: more ``trl-sft-kit train`` arguments for every process (``["--resume"]``).

    Raises:
        RecipeError: the recipe cannot work, or the launch settings are incomplete.
        MissingDependencyError: DeepSpeed is asked for and not installed.
    """
    unknown = [name for name in options if name not in LaunchOptions.__annotations__]
    if unknown:  # as Python says it of a named parameter: launch_plan's own (gpus, python) are not launch's
        raise TypeError(f"launch() got an unexpected keyword argument {unknown[0]!r}")
    recipe = _read_recipe(recipe_path, overrides)
    recipe.validate()
    require_backend(recipe.distributed_spec)
    plan = launch_plan(recipe.distributed_spec, recipe_path, overrides, **options)
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
