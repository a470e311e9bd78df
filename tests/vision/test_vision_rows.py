"""Vision rows: every shipped format becomes TRL's content parts + images; bad images are row errors."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.errors import RowError
from trl_sft_kit.testing.vision import sample_image, write_vision_dataset
from trl_sft_kit.vision.data import prepare_vision_data
from trl_sft_kit.vision.rows import vision_row

IMAGE = {"type": "image", "text": None}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def spec_of(source: Any, **options: Any) -> Any:
    spec = SFTRecipe().dataset(source, **options).dataset_spec
    assert spec is not None
    return spec


def test_llama_factory_markers_become_parts_and_paths_are_read_next_to_the_data_file(tmp_path: Path) -> None:
    path = write_vision_dataset(tmp_path / "data", 3)
    rows, report = prepare_vision_data(spec_of(str(path)))
    first = rows[0]
    assert first["messages"][0] == {"role": "user", "content": [IMAGE, text("What colour is the square?")]}
    assert first["messages"][1]["content"][0]["text"].startswith("A ")
    assert first["images"][0].mode == "RGB" and first["images"][0].size == (40, 32)
    assert (report.rows_read, report.rows_kept, report.format) == (3, 3, "vision_messages")
    assert "3 images in 3 rows" in report.summary()


def test_content_parts_with_inline_images_and_with_an_images_column() -> None:
    picture = sample_image("blue")
    inline: dict[str, Any] = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "image": picture}, {"type": "text", "text": "Q?"}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Blue."}]},
        ]
    }
    row = vision_row(inline, None)
    assert row["messages"][0]["content"] == [IMAGE, text("Q?")] and len(row["images"]) == 1
    column = {**inline, "images": [picture]}
    column["messages"] = [
        {**inline["messages"][0], "content": [{"type": "image"}, text("Q?")]},
        inline["messages"][1],
    ]
    assert vision_row(column, None)["images"][0].size == picture.size


def test_sharegpt_llava_rows_with_a_single_image(tmp_path: Path) -> None:
    sample_image("green").save(tmp_path / "g.png")
    row = {
        "image": "g.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat colour?"},
            {"from": "gpt", "value": "Green."},
        ],
    }
    canonical = vision_row(row, tmp_path)
    assert [m["role"] for m in canonical["messages"]] == ["user", "assistant"]
    assert canonical["messages"][0]["content"] == [IMAGE, text("What colour?")]


def test_pil_images_and_a_datasets_image_feature_are_accepted() -> None:
    import datasets

    buffer = io.BytesIO()
    sample_image("yellow").save(buffer, format="PNG")
    messages = [{"role": "user", "content": "<image>Colour?"}, {"role": "assistant", "content": "Yellow."}]
    assert len(vision_row({"messages": messages, "images": [sample_image()]}, None)["images"]) == 1
    assert (
        len(
            vision_row({"messages": messages, "images": [{"bytes": buffer.getvalue(), "path": None}]}, None)[
                "images"
            ]
        )
        == 1
    )
    table = datasets.Dataset.from_dict(
        {"messages": [messages], "images": [[sample_image("yellow")]]},
        features=datasets.Features(
            {
                "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
                "images": datasets.List(datasets.Image()),
            }
        ),
    )
    rows, _ = prepare_vision_data(spec_of(table))
    assert rows[0]["images"][0].getpixel((0, 0)) == sample_image("yellow").getpixel((0, 0))


def _write(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "mllm.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_a_missing_image_is_a_row_error_with_file_row_and_field_or_skipped_and_counted(
    tmp_path: Path,
) -> None:
    path = write_vision_dataset(tmp_path, 3)
    rows = json.loads(path.read_text())
    rows[1]["images"] = ["images/nowhere.png"]
    (tmp_path / "broken.png").write_text("not an image")
    rows[2]["images"] = ["broken.png"]
    path = _write(tmp_path, rows)
    with pytest.raises(RowError) as caught:
        prepare_vision_data(spec_of(str(path)))
    assert (caught.value.path, caught.value.row, caught.value.field) == (str(path), 1, "images[0]")
    assert "does not exist" in str(caught.value) and "on_bad_rows='skip'" in str(caught.value)
    kept, report = prepare_vision_data(spec_of(str(path), on_bad_rows="skip"))
    assert (len(kept), report.rows_kept, len(report.skipped)) == (1, 1, 2)
    assert "cannot be read as an image" in report.skipped[1].reason


def test_marker_count_must_match_the_images(tmp_path: Path) -> None:
    path = write_vision_dataset(tmp_path, 1)
    rows = json.loads(path.read_text())
    rows[0]["images"] = rows[0]["images"] * 2
    with pytest.raises(RowError, match=r"1 image placeholders .* but 2 images are given") as caught:
        prepare_vision_data(spec_of(str(_write(tmp_path, rows))))
    assert caught.value.field == "images"


def test_an_image_url_is_refused_with_what_to_do() -> None:
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.org/a.png"}}]},
            {"role": "assistant", "content": "A."},
        ]
    }
    with pytest.raises(RowError, match="reads no image from the network"):
        vision_row(row, None)
