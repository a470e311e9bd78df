"""Several processes: the recipe's choice, the trainer settings and launch files it makes, a real run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import MissingDependencyError, RecipeError, SFTRecipe
from trl_sft_kit.compile import config_kwargs
from trl_sft_kit.distributed import (
    accelerate_config,
    deepspeed_config,
    launch,
    launch_plan,
    sftconfig_fields,
    write_launch_files,
)
from trl_sft_kit.specs import DistributedSpec

HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None


def test_the_choice_is_checked_when_the_recipe_is_built() -> None:
    spec = SFTRecipe().distributed("fsdp", num_processes=4, cpu_offload=True).distributed_spec
    assert spec == DistributedSpec("fsdp", num_processes=4, options={"cpu_offload": True})
    assert SFTRecipe().distributed("ddp").distributed(None).distributed_spec is None
    with pytest.raises(RecipeError, match="must be one of 'ddp', 'fsdp'"):
        SFTRecipe().distributed("horovod")
    with pytest.raises(RecipeError, match="has no option 'cpu_offload'; it takes 'find_unused_parameters'"):
        SFTRecipe().distributed("ddp", cpu_offload=True)
    with pytest.raises(RecipeError, match="'offload_param' must be 'cpu', 'nvme' or None"):
        SFTRecipe().distributed("deepspeed_zero3", offload_param="gpu")
    with pytest.raises(RecipeError, match="'num_processes' must be a whole number >= 1"):
        SFTRecipe().distributed("ddp", num_processes=0)


def test_validate_names_conflicts_with_training_fields_and_quantization() -> None:
    recipe = (
        SFTRecipe().dataset("a.jsonl").lora().quantize("4bit").distributed("fsdp").training(fsdp="full_shard")
    )
    with pytest.raises(RecipeError) as info:
        recipe.validate()
    text = " ".join(info.value.problems)
    assert (
        ".distributed('fsdp') and .training(fsdp=...)" in text and "quantize('4bit') with distributed" in text
    )


def test_trainer_fields_for_each_kind() -> None:
    ddp = DistributedSpec("ddp", options={"find_unused_parameters": False, "backend": "gloo", "timeout": 600})
    assert sftconfig_fields(ddp) == {
        "ddp_find_unused_parameters": False,
        "ddp_backend": "gloo",
        "ddp_timeout": 600,
    }
    fsdp = sftconfig_fields(
        DistributedSpec("fsdp", options={"transformer_layer_cls_to_wrap": ["Qwen2DecoderLayer"]})
    )
    assert (
        fsdp["fsdp"] is True and fsdp["activation_checkpointing"] is False
    )  # FSDP's own checkpointing instead
    assert fsdp["fsdp_config"]["version"] == 2 and fsdp["fsdp_config"]["activation_checkpointing"] is True
    assert fsdp["fsdp_config"]["transformer_layer_cls_to_wrap"] == ["Qwen2DecoderLayer"]
    assert sftconfig_fields(DistributedSpec("fsdp"), launched="fsdp") == {}  # accelerate set it up already
    zero3 = sftconfig_fields(DistributedSpec("deepspeed_zero3", options={"offload_optimizer": "cpu"}))
    assert zero3["deepspeed"]["zero_optimization"]["stage"] == 3
    assert zero3["deepspeed"]["zero_optimization"]["offload_optimizer"] == {
        "device": "cpu",
        "pin_memory": True,
    }
    assert zero3["deepspeed"]["train_micro_batch_size_per_gpu"] == "auto"
    merged = deepspeed_config(
        DistributedSpec("deepspeed_zero2", options={"config": {"zero_optimization": {"overlap_comm": False}}})
    )
    assert merged["zero_optimization"] == {**merged["zero_optimization"], "stage": 2, "overlap_comm": False}


def test_an_fsdp_recipe_makes_a_real_sftconfig() -> None:
    from trl_sft_kit.compile import _build_config

    recipe = (
        SFTRecipe().dataset("a.jsonl").distributed("fsdp", cpu_offload=True).training(output_dir="/tmp/x")
    )
    config = _build_config(config_kwargs(recipe, bf16_capable=False, accelerator=False))
    assert config.fsdp_plugin_args["fsdp_version"] == 2 and config.fsdp_plugin_args["cpu_offload"] is True
    assert config.activation_checkpointing is False


@pytest.mark.skipif(HAS_DEEPSPEED, reason="DeepSpeed is installed here")
def test_deepspeed_without_the_package_is_named_before_anything_loads(tmp_path: Path) -> None:
    recipe = SFTRecipe().model("no/such-model").dataset([{"text": "hello"}]).distributed("deepspeed_zero2")
    with pytest.raises(MissingDependencyError, match="pip install deepspeed") as info:
        recipe.compile()
    assert info.value.package == "deepspeed"
    path = tmp_path / "recipe.yaml"
    recipe.to_yaml(path)
    with pytest.raises(MissingDependencyError, match="pip install deepspeed"):
        launch(path, dry_run=True)


@pytest.mark.parametrize(
    ("kind", "distributed_type"),
    [
        ("ddp", "MULTI_GPU"),
        ("fsdp", "FSDP"),
        ("deepspeed_zero2", "DEEPSPEED"),
        ("deepspeed_zero3", "DEEPSPEED"),
    ],
)
def test_accelerate_reads_the_configuration_written_for_each_kind(
    tmp_path: Path, kind: str, distributed_type: str
) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    spec = DistributedSpec(kind, options={"cpu_offload": True} if kind == "fsdp" else {})
    files = write_launch_files(
        spec, tmp_path, num_processes=4, num_machines=2, machine_rank=1, main_process_ip="10.0.0.1"
    )
    loaded = load_config_from_file(str(files[0]))
    assert loaded.distributed_type.value == distributed_type
    assert (loaded.num_processes, loaded.num_machines, loaded.machine_rank) == (8, 2, 1)
    assert (loaded.main_process_ip, loaded.main_process_port) == ("10.0.0.1", 29500)
    if kind == "fsdp":
        assert loaded.fsdp_config["fsdp_version"] == 2 and loaded.fsdp_config["fsdp_offload_params"] is True
    if kind.startswith("deepspeed"):
        written = json.loads(Path(loaded.deepspeed_config["deepspeed_config_file"]).read_text())
        assert written["zero_optimization"]["stage"] == int(kind[-1])
        assert loaded.deepspeed_config["zero3_init_flag"] is (kind == "deepspeed_zero3")


def test_launch_plans(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    cpu = launch_plan(DistributedSpec("ddp", num_processes=2), recipe, ["max_steps=2"], gpus=0)
    assert cpu.launcher == "torchrun" and cpu.env == {"ACCELERATE_USE_CPU": "true"}
    command = list(cpu.command)
    assert command[1:6] == ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    assert command[command.index("-m", 2) :] == [
        "-m",
        "trl_sft_kit.distributed",
        str(recipe),
        "--set",
        "max_steps=2",
    ]

    gpu = launch_plan(DistributedSpec("fsdp"), recipe, gpus=8, config_dir=tmp_path / "launch")
    assert gpu.launcher == "accelerate" and gpu.num_processes == 8 and gpu.env == {}
    assert list(gpu.command[1:5]) == ["-m", "accelerate.commands.launch", "--config_file", str(gpu.files[0])]
    assert "distributed_type: FSDP" in gpu.files[0].read_text()

    nodes = launch_plan(
        DistributedSpec("ddp", num_machines=2),
        recipe,
        gpus=4,
        machine_rank=1,
        main_process_ip="10.1.2.3",
        launcher="torchrun",
    )
    assert "--nnodes 2 --node_rank 1 --master_addr 10.1.2.3 --master_port 29500" in str(nodes)

    with pytest.raises(RecipeError, match="no GPU, so the number of processes must be given"):
        launch_plan(None, recipe, gpus=0)
    with pytest.raises(RecipeError, match="needs the main machine's address"):
        launch_plan(DistributedSpec("ddp", num_machines=2), recipe, gpus=1)
    with pytest.raises(RecipeError, match="trains on CUDA GPUs"):
        launch_plan(DistributedSpec("deepspeed_zero2", num_processes=2), recipe, gpus=0)
    config = accelerate_config(DistributedSpec("ddp"), num_processes=8)
    assert "main_process_ip" not in config and config["num_processes"] == 8


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["auto", "accelerate"])
def test_two_processes_train_on_cpu_and_only_the_main_one_writes(
    tmp_path: Path,
    tiny_model_dir: Path,
    data_file: Any,
    capfd: pytest.CaptureFixture[str],
    cache_root: Path,
    launcher: str,
) -> None:
    """``auto`` is torchrun here (no GPU); ``accelerate`` is ``accelerate launch`` with the written config."""
    import torch

    output = tmp_path / "run"
    recipe = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(data_file("messages", 16))
        .lora(r=4)
        .distributed("ddp", num_processes=2)
        .cache(True)
        .training(
            output_dir=str(output),
            max_length=128,
            per_device_train_batch_size=4,
            num_train_epochs=1,
            logging_steps=1,
            save_strategy="no",
            activation_checkpointing=False,
            disable_tqdm=True,
            seed=0,
        )
    )
    path = tmp_path / "recipe.yaml"
    recipe.to_yaml(path)

    code = launch(path, ["learning_rate=1e-3"], launcher=launcher, config_dir=tmp_path / "launch")
    out, err = capfd.readouterr()
    assert code == 0, err[-3000:]
    expected = (
        "accelerate.commands.launch --config_file" if launcher == "accelerate" else "torch.distributed.run"
    )
    assert expected in out
    assert out.count("trl-sft-kit: 2 training process(es) started") == 1  # said by the main process only
    # 16 rows, 4 a process, 2 processes: 2 steps (one process alone would take 4)
    assert out.count("trained 2 steps") == 1
    args = torch.load(output / "training_args.bin", weights_only=False)
    assert args.world_size == 2 and args.learning_rate == pytest.approx(1e-3)
    assert sorted(p.name for p in output.rglob("adapter_model.safetensors")) == ["adapter_model.safetensors"]
    assert json.loads((output / "run.json").read_text())["global_step"] == 2
    assert len(list(cache_root.iterdir())) == 1  # the main process prepared the data; the other loaded it
