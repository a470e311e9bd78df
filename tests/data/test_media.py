"""Images, videos and audio in rows are refused for a text model, or dropped and counted: never silently."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trl_sft_kit import DatasetReport, SFTRecipe
from trl_sft_kit.data.media import MEDIA_PART_TYPES, drop_media, find_media, has_media
from trl_sft_kit.data.prepare import prepare_dataset
from trl_sft_kit.errors import DatasetError, MediaError, RecipeError, RowError
from trl_sft_kit.formats import register_format, unregister_format

# Rows as LLaMA-Factory's data/mllm_demo.json writes them: <image> markers in the user turns, file paths.
MLLM_DEMO: list[dict[str, Any]] = [
    {
        "messages": [
            {"content": "<image>Who are they?", "role": "user"},
            {"content": "They're Kane and Gretzka from Bayern Munich.", "role": "assistant"},
            {"content": "What are they doing?<image>", "role": "user"},
            {"content": "They are celebrating on the soccer field.", "role": "assistant"},
        ],
        "images": ["mllm_demo_data/1.jpg", "mllm_demo_data/1.jpg"],
    },
    {
        "messages": [
            {"content": "<image>Who is he?", "role": "user"},
            {"content": "He's Thomas Muller from Bayern Munich.", "role": "assistant"},
        ],
        "images": ["mllm_demo_data/2.jpg"],
    },
]

CONTENT_PARTS: list[dict[str, Any]] = [
    {
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A red square."}]},
        ]
    },
    {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe it."},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            },
            {"role": "assistant", "content": "A cat."},
        ]
    },
]

SHAREGPT_LLAVA = [
    {
        "id": "000000033471",
        "image": "coco/train2017/000000033471.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat are the colors of the bus in the image?"},
            {"from": "gpt", "value": "The bus in the image is white and red."},
        ],
    }
]


def prepare(recipe: SFTRecipe, *, chat: bool) -> tuple[Any, DatasetReport]:
    """The recipe's one source, read, detected, converted and checked."""
    assert recipe.dataset_spec is not None
    return prepare_dataset(recipe.dataset_spec, chat=chat)


def write_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return path


def test_mllm_demo_json_is_refused_naming_file_row_field_and_the_way_out(tmp_path: Path) -> None:
    path = write_json(tmp_path / "mllm_demo.json", MLLM_DEMO)
    recipe = SFTRecipe().dataset(str(path))
    with pytest.raises(MediaError) as caught:
        prepare(recipe, chat=True)
    error = caught.value
    assert isinstance(error, RowError) and isinstance(error, DatasetError)
    assert (error.path, error.row, error.field) == (str(path), 0, "images")
    message = str(error)
    assert message.startswith(f"{path}, row 0, field 'images': the row holds 2 images in 'images'")
    assert "2 of the 2 rows" in message
    assert "media='drop'" in message and "vision-language model" in message


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        (CONTENT_PARTS, "messages[0].content[0]"),
        (SHAREGPT_LLAVA, "image"),
        ([{"text": "<image>\nA photo of a cat."}], "text"),
        ([{"prompt": "<video>What happens?", "completion": "A goal."}], "prompt"),
        ([{"instruction": "Transcribe.", "output": "Hello.", "audios": ["a.wav"]}], "audios"),
    ],
    ids=["content-parts", "sharegpt-llava", "text-marker", "video-marker", "alpaca-audios"],
)
def test_every_format_with_media_is_refused(rows: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(MediaError) as caught:
        prepare(SFTRecipe().dataset(rows), chat=True)
    assert caught.value.field == field
    assert caught.value.row == 0


def test_media_is_refused_under_on_bad_rows_skip_too() -> None:
    # An image part was once a bad row, skipped under on_bad_rows="skip"; media is a choice, not a bad row.
    rows = [
        *CONTENT_PARTS,
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]},
    ]
    with pytest.raises(MediaError, match="media='drop'"):
        prepare(SFTRecipe().dataset(rows, on_bad_rows="skip"), chat=True)


def test_the_first_row_with_media_is_named_and_text_rows_pass(tmp_path: Path) -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    rows: list[dict[str, Any]] = [chat, chat, chat, {**chat, "images": []}, MLLM_DEMO[1]]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    with pytest.raises(MediaError) as caught:
        prepare(SFTRecipe().dataset(str(path)), chat=True)
    assert (caught.value.line, caught.value.field) == (5, "images")
    assert "1 of the 5 rows" in str(caught.value)
    # Text rows alone, an empty images column included, are untouched.
    _, report = prepare(SFTRecipe().dataset(rows[:4]), chat=True)
    assert (report.rows_kept, report.media_rows, report.media_dropped) == (4, 0, ())


def test_media_drop_removes_media_and_markers_and_counts_them(tmp_path: Path) -> None:
    path = write_json(tmp_path / "mllm_demo.json", [*MLLM_DEMO, *CONTENT_PARTS])
    dataset, report = prepare(SFTRecipe().dataset(str(path), media="drop"), chat=True)
    assert "images" not in dataset.column_names
    first = dataset[0]["messages"]
    assert [message["content"] for message in first] == [
        "Who are they?",
        "They're Kane and Gretzka from Bayern Munich.",
        "What are they doing?",
        "They are celebrating on the soccer field.",
    ]
    assert dataset[2]["messages"][0]["content"] == "What is this?"
    assert report.media_rows == 4
    assert dict(report.media_dropped) == {"images": 5, "markers": 3}
    assert "media dropped (media='drop'): 5 images, 3 markers, from 4 rows" in report.summary()


def test_media_text_keeps_markers_as_text_but_still_refuses_media_columns() -> None:
    html = [{"text": "Embed it with <video> and <audio> tags."}]
    dataset, report = prepare(SFTRecipe().dataset(html, media="text"), chat=False)
    assert dataset[0]["text"] == html[0]["text"] and report.media_rows == 0
    with pytest.raises(MediaError, match="media='text'"):
        prepare(SFTRecipe().dataset(html), chat=False)
    with pytest.raises(MediaError) as caught:
        prepare(SFTRecipe().dataset(MLLM_DEMO, media="text"), chat=True)
    assert caught.value.field == "images"


def test_media_option_is_checked_and_round_trips_through_a_config() -> None:
    with pytest.raises(RecipeError, match="media"):
        SFTRecipe().dataset("d.jsonl", media="keep-quietly")
    recipe = SFTRecipe().dataset("d.jsonl", media="drop").mix("e.jsonl", media="text")
    assert SFTRecipe.from_dict(recipe.to_dict()).dataset_specs == recipe.dataset_specs
    assert "media" not in recipe.to_dict()["dataset"] or recipe.to_dict()["dataset"]["media"] == "drop"


def test_pil_images_and_undecoded_image_values_count_as_media() -> None:
    from PIL import Image

    picture = Image.new("RGB", (4, 4), "red")
    assert [item.kind for item in find_media({"text": "A red square.", "picture": picture})] == ["image"]
    stored = {"bytes": b"\x89PNG", "path": None}
    assert [item.field for item in find_media({"text": "x", "photo": [stored]})] == ["photo[0]"]
    row, counts = drop_media({"text": "x", "photo": picture})
    assert row == {"text": "x", "photo": None} and counts == {"images": 1}


def test_a_hub_style_dataset_with_an_image_feature_is_refused() -> None:
    import datasets
    from PIL import Image

    table = datasets.Dataset.from_dict(
        {
            "messages": [[{"role": "user", "content": "What?"}, {"role": "assistant", "content": "Red."}]],
            "images": [[Image.new("RGB", (4, 4), "red")]],
        },
        features=datasets.Features(
            {
                "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
                "images": datasets.List(datasets.Image()),
            }
        ),
    )
    with pytest.raises(MediaError) as caught:
        prepare(SFTRecipe().dataset(table), chat=True)
    assert caught.value.field == "images"


class VisualDialogueFormat:
    """A plug-in format that, like most, keeps what it knows (the turns) and ignores other columns."""

    name = "visual_dialogue"
    canonical = "messages"

    def match(self, row: Any, options: Any) -> Any:
        from trl_sft_kit.formats import FormatMatch

        if "turns" in row:
            return FormatMatch.yes(0.9, "'turns' is a list")
        return FormatMatch.no("no 'turns'")

    def convert(self, row: Any, options: Any) -> dict[str, Any]:
        roles = ("user", "assistant")
        return {"messages": [{"role": roles[i % 2], "content": turn} for i, turn in enumerate(row["turns"])]}


@pytest.fixture()
def visual_dialogue() -> Iterator[None]:
    register_format(VisualDialogueFormat())
    yield
    unregister_format("visual_dialogue")


def test_a_plug_in_format_cannot_drop_media_silently(visual_dialogue: None) -> None:
    rows = [{"turns": ["What is in the picture?", "A dog."], "images": ["dog.png"]}]
    with pytest.raises(MediaError) as caught:
        prepare(SFTRecipe().dataset(rows), chat=True)
    assert caught.value.field == "images"
    _, report = prepare(SFTRecipe().dataset(rows, media="drop"), chat=True)
    assert report.format == "visual_dialogue" and dict(report.media_dropped) == {"images": 1}


def test_the_example_dialogue_plug_in_with_images_is_refused() -> None:
    pytest.importorskip("sft_kit_dialogue_format")
    rows = [{"dialogue": ["<image>What is this?", "A cat."]}]
    with pytest.raises(MediaError) as caught:
        prepare(SFTRecipe().dataset(rows, format="dialogue"), chat=True)
    assert caught.value.field == "dialogue[0]"


def test_inspect_refuses_mllm_demo_and_shows_the_dropped_media(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "mllm_demo.json", MLLM_DEMO)
    recipe = SFTRecipe().model(tiny_model_dir).loss("assistant_only")
    with pytest.raises(MediaError, match=r"mllm_demo\.json, row 0, field 'images'"):
        recipe.dataset(str(path)).inspect(rows=1)
    report = recipe.dataset(str(path), media="drop").inspect(rows=1)
    assert "media dropped (media='drop'): 3 images, 3 markers, from 2 rows" in str(report)
    assert "<image>" not in str(report)


def test_a_streamed_source_refuses_media_in_rows_read_while_training(tmp_path: Path) -> None:
    from trl_sft_kit.data.media import handle_streamed_row

    text = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    assert handle_streamed_row(text, "auto", "d.jsonl, line 900") is text
    with pytest.raises(MediaError, match=r"d\.jsonl, line 900, field 'images'"):
        handle_streamed_row(MLLM_DEMO[1], "auto", "d.jsonl, line 900")
    assert "images" not in handle_streamed_row(MLLM_DEMO[1], "drop", "d.jsonl, line 900")


def test_dropped_media_counts_add_up_in_a_mixture_and_survive_the_cache_round_trip(tmp_path: Path) -> None:
    import attrs

    from trl_sft_kit.data.cache import _dataset_report
    from trl_sft_kit.data.mixture import combine_reports

    _, first = prepare(SFTRecipe().dataset(MLLM_DEMO, media="drop"), chat=True)
    _, second = prepare(SFTRecipe().dataset(CONTENT_PARTS, media="drop"), chat=True)
    combined = combine_reports([first, second])
    assert (combined.media_rows, dict(combined.media_dropped)) == (4, {"images": 5, "markers": 3})
    assert _dataset_report(attrs.asdict(combined)) == combined


# ------------------------------------------------------------------------ has_media agrees with find_media


_texts = st.sampled_from(["", "plain", "<image>", "a <video> b", "<audio>", "<img>", "<Image>"])
_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _texts, st.binary())
_parts = st.fixed_dictionaries(
    {"type": st.sampled_from([*MEDIA_PART_TYPES, "text", "tool_call"])}, optional={"text": _texts}
)
_values = st.recursive(
    st.one_of(_leaves, _parts, st.just({"bytes": b"x", "path": "a.png"})),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(st.sampled_from("abc"), inner)
    ),
    max_leaves=12,
)
_rows = st.dictionaries(
    st.sampled_from(["messages", "text", "images", "Video", "audio", "prompt", "meta"]), _values, max_size=4
)


@settings(max_examples=300, deadline=None)
@given(_rows)
def test_has_media_is_find_media_found_anything(row: dict[str, Any]) -> None:
    assert has_media(row) is bool(find_media(row))


def test_has_media_on_the_shipped_layouts() -> None:
    assert all(has_media(row) for row in MLLM_DEMO + CONTENT_PARTS)
    assert not has_media(
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
    )
