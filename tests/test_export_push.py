"""push_to_hub refuses clearly, before any network call, when offline or not logged in.

No test here reaches the network: sockets are blocked, and the Hub client's upload methods fail loudly.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from trl_sft_kit.errors import BackendError, RecipeError
from trl_sft_kit.result import TrainResult, load_result


class NetworkUsedError(AssertionError):
    """A test reached for the network."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NetworkUsedError("the network was used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for method in ("create_repo", "upload_folder", "whoami"):
        monkeypatch.setattr(huggingface_hub.HfApi, method, refuse)


@pytest.fixture()
def adapter_run(tmp_path: Path) -> TrainResult:
    """An output folder that looks like a LoRA run's (nothing is loaded by a refused push)."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-0.5B", "peft_type": "LORA"}), encoding="utf-8"
    )
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return load_result(folder)


@pytest.fixture()
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode off, as a user with a network would have it (the network itself stays blocked)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_offline_push_says_so_and_how_to_upload_later(
    adapter_run: TrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError) as caught:
        adapter_run.push_to_hub("me/tiny-sft", token="hf_fake")
    message = str(caught.value)
    assert "offline" in message and "HF_HUB_OFFLINE" in message
    assert f"hf upload me/tiny-sft {adapter_run.output_dir}" in message
    assert "huggingface-cli upload" in message

    with pytest.raises(BackendError, match=r"merge first with result\.merge"):
        adapter_run.push_to_hub("me/tiny-sft", merged=True, token="hf_fake")


def test_push_without_login_refuses_before_the_network(
    adapter_run: TrainResult, online: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    home = tmp_path / "empty-hf-home"
    home.mkdir()
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    with pytest.raises(BackendError) as caught:
        adapter_run.push_to_hub("me/tiny-sft")
    message = str(caught.value)
    assert "not logged in" in message and "hf auth login" in message and "HF_TOKEN" in message
    assert "huggingface-cli login" in message
    assert not isinstance(caught.value.__cause__, NetworkUsedError)


def test_push_rejects_a_malformed_repo_id(adapter_run: TrainResult) -> None:
    with pytest.raises(RecipeError, match="not a Hub repository id"):
        adapter_run.push_to_hub("me/tiny sft/x", token="hf_fake")


def test_network_and_hub_failures_are_translated(
    adapter_run: TrainResult, online: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    def unreachable(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", unreachable)
    with pytest.raises(BackendError, match="could not reach the Hugging Face Hub") as caught:
        adapter_run.push_to_hub("me/tiny-sft", token="hf_fake")
    assert "hf upload me/tiny-sft" in str(caught.value)

    def forbidden(self: Any, *args: Any, **kwargs: Any) -> Any:
        response = SimpleNamespace(status_code=403, headers={}, request=None)
        raise HfHubHTTPError("403 Forbidden", response=response)  # type: ignore[arg-type]

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", forbidden)
    with pytest.raises(BackendError, match="write access"):
        adapter_run.push_to_hub("me/tiny-sft", token="hf_fake")
