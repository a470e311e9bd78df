"""The plug-in registry: registering, refusing malformed plug-ins, and entry points of real distributions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from trl_sft_kit.errors import PluginError
from trl_sft_kit.formats import (
    FormatMatch,
    FormatOptions,
    available_formats,
    format_names,
    get_format,
    register_format,
    unregister_format,
)
from trl_sft_kit.packing import get_packer, packer_names, register_packer, unregister_packer
from trl_sft_kit.plugins import BUILTIN, DISABLE_ENV, Registration, Registry

REPO = Path(__file__).resolve().parents[1]


@attrs.frozen
class EchoFormat:
    """A minimal detector for tests: rows with ``say`` become text rows."""

    name: str = "echo_for_tests"
    canonical: str = "text"

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """Rows with a ``say`` field."""
        return FormatMatch.yes(0.7, "has 'say'") if "say" in row else FormatMatch.no("no 'say'")

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """``say`` becomes ``text``."""
        return {"text": row["say"]}


@attrs.frozen
class NullPacker:
    """A packer for tests that leaves the dataset as it is."""

    name: str = "null_for_tests"
    crosses_boundaries: bool = False

    def pack(self, dataset: Any, *, max_length: int) -> Any:
        """No packing at all."""
        return dataset


@pytest.fixture()
def echo() -> Iterator[EchoFormat]:
    detector = EchoFormat()
    yield detector
    unregister_format(detector.name)


# -------------------------------------------------------------------------------------- Registry


def _check_widget(plugin: Any) -> Any:
    if not callable(getattr(plugin, "run", None)):
        raise PluginError(f"{plugin!r} has no run().", name=getattr(plugin, "name", None))
    return plugin


@attrs.frozen
class Widget:
    name: str
    version: int = 1

    def run(self) -> int:
        return self.version


def _widgets() -> Registry[Widget]:
    return Registry("widget", "trl_sft_kit_tests.no_such_group", _check_widget)


def test_registry_registers_looks_up_and_lists_in_order() -> None:
    registry = _widgets()
    first = registry.register(Widget("a"), provider="pkg-a 1.0")
    registry.register(Widget("b"))
    assert registry.names() == ("a", "b")
    assert registry.get("a") is first.plugin
    assert registry.registration("b").provider == "user code"
    assert [r.name for r in registry.registrations()] == ["a", "b"]


def test_registry_duplicate_name_needs_replace() -> None:
    registry = _widgets()
    registry.register(Widget("a"), provider="pkg-a 1.0")
    with pytest.raises(PluginError) as caught:
        registry.register(Widget("a", version=2), provider="pkg-b 2.0")
    message = str(caught.value)
    assert "'a'" in message
    assert "pkg-a 1.0" in message
    assert "replace=True" in message
    assert (caught.value.name, caught.value.provider) == ("a", "pkg-b 2.0")
    assert registry.get("a").version == 1
    registry.register(Widget("a", version=2), provider="pkg-b 2.0", replace=True)
    assert registry.get("a").version == 2
    assert registry.registration("a").provider == "pkg-b 2.0"
    assert registry.names() == ("a",)


@pytest.mark.parametrize("bad", [object(), Widget("")], ids=["no run", "empty name"])
def test_registry_refuses_malformed_plugins_and_stays_unchanged(bad: Any) -> None:
    registry = _widgets()
    registry.register(Widget("a"))
    if isinstance(bad, Widget):
        with pytest.raises(PluginError, match="non-empty string 'name'"):
            registry.register(bad)
    else:
        with pytest.raises(PluginError, match="has no run"):
            registry.register(bad)
    assert registry.names() == ("a",)


def test_registry_unknown_name_lists_the_names() -> None:
    registry = _widgets()
    registry.register(Widget("alpha"))
    with pytest.raises(PluginError) as caught:
        registry.get("alpah")
    assert "no widget named 'alpah'" in str(caught.value)
    assert "'alpha'" in str(caught.value)
    assert isinstance(caught.value, TypeError)


def test_registry_unregister() -> None:
    registry = _widgets()
    registry.register(Widget("a"))
    registry.unregister("a")
    registry.unregister("never-there")
    assert registry.names() == ()


def test_registration_repr_shows_name_and_provider() -> None:
    registration = Registration(name="a", plugin=Widget("a"), provider="pkg-a 1.0")
    assert repr(registration) == "<Widget 'a' from pkg-a 1.0>"
    assert repr(available_formats()[0]) == f"<MessagesFormat 'messages' from {BUILTIN}>"


# -------------------------------------------------------------------------------------- formats


def test_builtin_formats_are_registered_by_the_kit() -> None:
    names = format_names()
    assert names[:5] == ("messages", "alpaca", "instruction_response", "prompt_completion", "text")
    assert {r.provider for r in available_formats() if r.name in names[:5]} == {BUILTIN}


def test_register_format_duplicate_needs_replace(echo: EchoFormat) -> None:
    registration = register_format(echo, provider="tests 0.1")
    assert repr(registration) == "<EchoFormat 'echo_for_tests' from tests 0.1>"
    assert get_format("echo_for_tests") is echo
    with pytest.raises(PluginError, match=r"already registered by tests 0\.1"):
        register_format(EchoFormat(canonical="messages"))
    assert get_format("echo_for_tests").canonical == "text"
    replacement = EchoFormat(canonical="messages")
    register_format(replacement, replace=True)
    assert get_format("echo_for_tests") is replacement


def test_replacing_a_builtin_needs_replace_and_can_be_undone() -> None:
    original = get_format("text")
    with pytest.raises(PluginError, match="already registered by trl_sft_kit"):
        register_format(EchoFormat(name="text"))
    assert get_format("text") is original
    try:
        register_format(EchoFormat(name="text"), replace=True)
        assert isinstance(get_format("text"), EchoFormat)
    finally:
        register_format(original, provider=BUILTIN, replace=True)
    assert get_format("text") is original


class NoConvert:
    name = "no_convert_for_tests"
    canonical = "text"

    def match(self, row: Any, options: Any) -> FormatMatch:
        return FormatMatch.no("never")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (NoConvert(), "lacks convert"),
        (EchoFormat(canonical="chatml"), "canonical must be one of messages, prompt_completion, text"),
        (EchoFormat(name=""), "non-empty string 'name'"),
        (attrs.evolve(EchoFormat(), name="match_not_callable_for_tests"), None),
    ],
    ids=["missing convert", "bad canonical", "empty name", "fine"],
)
def test_malformed_detector_is_refused_and_the_registry_is_unchanged(bad: Any, message: str | None) -> None:
    before = (format_names(), available_formats())
    if message is None:  # the control: a well-formed detector is accepted
        register_format(bad)
        unregister_format(bad.name)
    else:
        with pytest.raises(PluginError, match=message):
            register_format(bad)
    assert (format_names(), available_formats()) == before


def test_detector_whose_match_is_not_callable_is_refused() -> None:
    @attrs.frozen
    class Odd:
        name: str = "odd_for_tests"
        canonical: str = "text"
        match: str = "not a method"

        def convert(self, row: Any, options: Any) -> dict[str, Any]:
            return {}

    with pytest.raises(PluginError, match="must be methods"):
        register_format(Odd())
    assert "odd_for_tests" not in format_names()


def test_registered_format_is_used_by_detection(echo: EchoFormat) -> None:
    from trl_sft_kit.data import convert_rows, load_rows
    from trl_sft_kit.specs import DatasetSpec

    register_format(echo)
    spec = DatasetSpec([{"say": "hello"}, {"say": "world"}])
    prepared = convert_rows(load_rows(spec), spec, FormatOptions())
    assert prepared.report.format == "echo_for_tests"
    assert prepared.rows == [{"text": "hello"}, {"text": "world"}]


# -------------------------------------------------------------------------------------- packers


def test_packer_duplicate_name_needs_replace() -> None:
    assert "bfd" in packer_names()
    builtin = get_packer("bfd")
    with pytest.raises(PluginError, match="packer named 'bfd' is already registered"):
        register_packer(NullPacker(name="bfd"))
    assert get_packer("bfd") is builtin
    packer = NullPacker()
    try:
        registration = register_packer(packer, provider="tests 0.1")
        assert repr(registration) == "<NullPacker 'null_for_tests' from tests 0.1>"
        with pytest.raises(PluginError):
            register_packer(NullPacker())
        register_packer(NullPacker(), replace=True)
        assert get_packer("null_for_tests") == packer
    finally:
        unregister_packer("null_for_tests")


@pytest.mark.parametrize("bad", [object(), EchoFormat()], ids=["object", "detector"])
def test_malformed_packer_is_refused(bad: Any) -> None:
    before = packer_names()
    with pytest.raises(PluginError, match="is not a packer"):
        register_packer(bad)
    assert packer_names() == before


# -------------------------------------------------------------------------------------- entry points


def make_distribution(
    root: Path, name: str, version: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]
) -> Path:
    """Write an installed-looking distribution (``*.dist-info`` plus modules) into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, points in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{point} = {target}" for point, target in points.items()]
        lines.append("")
    (dist_info / "entry_points.txt").write_text("\n".join(lines))
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


QA_MODULE = """
    from trl_sft_kit.formats import FormatMatch

    class QAFormat:
        name = "qa_pairs"
        canonical = "prompt_completion"

        def match(self, row, options):
            if "q" in row and "a" in row:
                return FormatMatch.yes(0.95, "has 'q' and 'a'")
            return FormatMatch.no("needs 'q' and 'a'")

        def convert(self, row, options):
            return {"prompt": row["q"], "completion": row["a"]}
"""

PACKER_MODULE = """
    class KeepPacker:
        name = "keep"
        crosses_boundaries = False

        def pack(self, dataset, *, max_length):
            return dataset

    keep = KeepPacker()
"""


def run_isolated(root: Path, script: str, **env: str) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter with ``root`` on ``sys.path``; it prints one JSON object."""
    environment = {k: v for k, v in os.environ.items() if k != DISABLE_ENV}
    environment.update(env, PYTHONPATH=os.pathsep.join([str(root), str(REPO)]))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    make_distribution(
        root,
        "tiny-sft-plugin",
        "0.3.1",
        {
            "trl_sft_kit.formats": {"qa_pairs": "tiny_sft_plugin:QAFormat"},
            "trl_sft_kit.packers": {"keep": "tiny_sft_packer:keep"},
        },
        {"tiny_sft_plugin": QA_MODULE, "tiny_sft_packer": PACKER_MODULE},
    )
    return root


LIFECYCLE = """
    import json, sys
    from trl_sft_kit.formats import FormatOptions, available_formats, detect_format, format_names, get_format
    out = {}
    out["listed"] = "qa_pairs" in format_names()
    out["imported_after_listing"] = "tiny_sft_plugin" in sys.modules
    rows = [{"q": "Capital of France?", "a": "Paris"}]
    if out["listed"]:
        from trl_sft_kit.data import convert_rows, load_rows
        from trl_sft_kit.specs import DatasetSpec
        spec = DatasetSpec(rows, format="auto")
        prepared = convert_rows(load_rows(spec), spec, FormatOptions())
        out["detected"] = prepared.report.format
        out["prepared"] = prepared.rows
        out["same_as_detect_format"] = detect_format(rows, 1, FormatOptions()).format == "qa_pairs"
        out["imported_after_detection"] = "tiny_sft_plugin" in sys.modules
        out["converted"] = get_format("qa_pairs").convert(rows[0], FormatOptions())
        out["provider"] = [r.provider for r in available_formats() if r.name == "qa_pairs"]
        out["repr"] = [repr(r) for r in available_formats() if r.name == "qa_pairs"]
    from trl_sft_kit.packing import available_packers, get_packer, packer_names
    out["packer_listed"] = "keep" in packer_names()
    out["packer_imported_after_listing"] = "tiny_sft_packer" in sys.modules
    if out["packer_listed"]:
        out["packer"] = get_packer("keep").name
        out["packer_provider"] = [r.provider for r in available_packers() if r.name == "keep"]
    print(json.dumps(out))
"""


def test_entry_point_detector_is_listed_lazily_loaded_and_used(plugin_site: Path) -> None:
    out = run_isolated(plugin_site, LIFECYCLE)
    assert out == {
        "listed": True,
        "imported_after_listing": False,
        "detected": "qa_pairs",
        "prepared": [{"prompt": "Capital of France?", "completion": "Paris"}],
        "same_as_detect_format": True,
        "imported_after_detection": True,
        "converted": {"prompt": "Capital of France?", "completion": "Paris"},
        "provider": ["tiny-sft-plugin 0.3.1"],
        "repr": ["<QAFormat 'qa_pairs' from tiny-sft-plugin 0.3.1>"],
        "packer_listed": True,
        "packer_imported_after_listing": False,
        "packer": "keep",
        "packer_provider": ["tiny-sft-plugin 0.3.1"],
    }


def test_get_format_loads_only_the_plugin_asked_for(plugin_site: Path) -> None:
    out = run_isolated(
        plugin_site,
        """
        import json, sys
        from trl_sft_kit.formats import get_format
        from trl_sft_kit.packing import packer_names
        get_format("alpaca")
        before = "tiny_sft_plugin" in sys.modules
        name = get_format("qa_pairs").name
        packer_names()
        print(json.dumps([before, name, "tiny_sft_plugin" in sys.modules, "tiny_sft_packer" in sys.modules]))
        """,
    )
    assert out == [False, "qa_pairs", True, False]


@pytest.mark.parametrize("value", ["1", "all", "qa_pairs,keep", " keep , qa_pairs "])
def test_disable_env_hides_entry_points(plugin_site: Path, value: str) -> None:
    out = run_isolated(plugin_site, LIFECYCLE, **{DISABLE_ENV: value})
    assert out == {
        "listed": False,
        "imported_after_listing": False,
        "packer_listed": False,
        "packer_imported_after_listing": False,
    }


def test_disable_env_by_name_hides_only_that_plugin(plugin_site: Path) -> None:
    out = run_isolated(plugin_site, LIFECYCLE, **{DISABLE_ENV: "keep"})
    assert out["listed"] is True
    assert out["detected"] == "qa_pairs"
    assert out["packer_listed"] is False


def test_disable_env_read_at_first_use_not_at_import(plugin_site: Path) -> None:
    out = run_isolated(
        plugin_site,
        f"""
        import json, os
        import trl_sft_kit
        from trl_sft_kit.formats import format_names
        os.environ[{DISABLE_ENV!r}] = "1"
        print(json.dumps("qa_pairs" in format_names()))
        """,
    )
    assert out is False


def test_entry_point_whose_import_fails_names_the_plugin(tmp_path: Path) -> None:
    make_distribution(
        tmp_path,
        "broken-sft-plugin",
        "1.0",
        {"trl_sft_kit.formats": {"broken_fmt": "broken_sft_plugin:Format"}},
        {"broken_sft_plugin": "import a_module_that_does_not_exist\n"},
    )
    out = run_isolated(
        tmp_path,
        """
        import json
        from trl_sft_kit.errors import PluginError
        from trl_sft_kit.formats import FormatOptions, detect_format, format_names, get_format
        out = {"listed": "broken_fmt" in format_names(), "errors": []}
        for attempt in range(2):
            try:
                get_format("broken_fmt")
            except PluginError as exc:
                out["errors"].append([exc.name, exc.provider, str(exc)])
        try:
            detect_format([{"text": "x"}], 1, FormatOptions())
        except PluginError as exc:
            out["errors"].append([exc.name, exc.provider, str(exc)])
        out["alpaca"] = get_format("alpaca").name
        print(json.dumps(out))
        """,
    )
    assert out["listed"] is True
    assert out["alpaca"] == "alpaca"
    assert len(out["errors"]) == 3  # the failure does not vanish after the first attempt
    for name, provider, message in out["errors"]:
        assert (name, provider) == ("broken_fmt", "broken-sft-plugin 1.0")
        assert "'broken_fmt'" in message
        assert "broken-sft-plugin 1.0" in message
        assert "ModuleNotFoundError" in message
        assert f"{DISABLE_ENV}=broken_fmt" in message
    # Disabling it by name makes the kit usable again.
    out = run_isolated(
        tmp_path,
        """
        import json
        from trl_sft_kit.formats import FormatOptions, detect_format, format_names
        detection = detect_format([{"text": "x"}], 1, FormatOptions())
        print(json.dumps(["broken_fmt" in format_names(), detection.format]))
        """,
        **{DISABLE_ENV: "broken_fmt"},
    )
    assert out == [False, "text"]


def test_malformed_entry_point_plugins_are_refused_by_name(tmp_path: Path) -> None:
    make_distribution(
        tmp_path,
        "odd-sft-plugin",
        "2.0",
        {
            "trl_sft_kit.formats": {"wrong_name": "odd_sft_plugin:detector", "half": "odd_sft_plugin:half"},
            "trl_sft_kit.packers": {"nopack": "odd_sft_plugin:nopack"},
        },
        {
            "odd_sft_plugin": """
                from trl_sft_kit.formats import FormatMatch

                class Detector:
                    name = "another_name"
                    canonical = "text"
                    def match(self, row, options):
                        return FormatMatch.no("never")
                    def convert(self, row, options):
                        return {"text": ""}

                class Half:
                    name = "half"
                    canonical = "text"

                class NoPack:
                    name = "nopack"
                    crosses_boundaries = False

                detector, half, nopack = Detector(), Half(), NoPack()
            """
        },
    )
    out = run_isolated(
        tmp_path,
        """
        import json
        from trl_sft_kit.errors import PluginError
        from trl_sft_kit.formats import format_names, get_format
        from trl_sft_kit.packing import get_packer
        out = []
        for get, name in ((get_format, "wrong_name"), (get_format, "half"), (get_packer, "nopack")):
            try:
                get(name)
                out.append(None)
            except PluginError as exc:
                out.append([exc.name, str(exc)])
        print(json.dumps(out))
        """,
    )
    wrong_name, half, nopack = out
    assert wrong_name[0] == "wrong_name"
    assert "'another_name'" in wrong_name[1]
    assert "must match" in wrong_name[1]
    assert half[0] == "half"
    assert "lacks match, convert" in half[1]
    assert "odd-sft-plugin 2.0" in half[1]
    assert nopack[0] == "nopack"
    assert "is not a packer" in nopack[1]


def test_entry_point_clashing_with_a_builtin_name(tmp_path: Path) -> None:
    """A plug-in called like a built-in is an error when the registry is used, not a broken import."""
    make_distribution(
        tmp_path,
        "clash-sft-plugin",
        "0.1",
        {"trl_sft_kit.formats": {"alpaca": "clash_sft_plugin:Format"}, "trl_sft_kit.packers": {"bfd": "x:y"}},
        {"clash_sft_plugin": "raise RuntimeError('must not be imported')\n"},
    )
    script = """
        import json
        import trl_sft_kit
        from trl_sft_kit.errors import PluginError
        from trl_sft_kit.formats import get_format
        from trl_sft_kit.packing import get_packer
        out = []
        for get, name in ((get_format, "alpaca"), (get_format, "text"), (get_packer, "bfd")):
            try:
                out.append(type(get(name)).__name__)
            except PluginError as exc:
                out.append(str(exc))
        print(json.dumps(out))
    """
    out = run_isolated(tmp_path, script)
    for message, name in zip(out, ("alpaca", "alpaca", "bfd"), strict=True):
        assert f"named {name!r}" in message
        assert "clash-sft-plugin 0.1" in message
        assert BUILTIN in message
        assert f"{DISABLE_ENV}={name}" in message
    assert run_isolated(tmp_path, script, **{DISABLE_ENV: "alpaca,bfd"}) == [
        "AlpacaFormat",
        "TextFormat",
        type(get_packer("bfd")).__name__,
    ]


def test_two_distributions_declaring_one_name(tmp_path: Path) -> None:
    for dist in ("first-sft-plugin", "second-sft-plugin"):
        make_distribution(
            tmp_path, dist, "1.0", {"trl_sft_kit.formats": {"twin": f"{dist.replace('-', '_')}:Format"}}, {}
        )
    script = """
        import json
        from trl_sft_kit.errors import PluginError
        from trl_sft_kit.formats import format_names
        out = []
        for attempt in range(2):
            try:
                out.append(list(format_names()))
            except PluginError as exc:
                out.append(str(exc))
        print(json.dumps(out))
    """
    out = run_isolated(tmp_path, script)
    for message in out:
        assert "'twin'" in message
        assert "first-sft-plugin 1.0" in message
        assert "second-sft-plugin 1.0" in message
    assert "twin" not in run_isolated(tmp_path, script, **{DISABLE_ENV: "twin"})[0]


def test_importing_the_kit_does_not_scan_entry_points(plugin_site: Path) -> None:
    out = run_isolated(
        plugin_site,
        """
        import json
        from importlib import metadata
        calls = []
        real = metadata.entry_points
        def spy(**params):
            calls.append(params.get("group"))
            return real(**params)
        metadata.entry_points = spy
        import trl_sft_kit.formats, trl_sft_kit.packing, trl_sft_kit.data
        ours = lambda: [group for group in calls if group and group.startswith("trl_sft_kit")]
        at_import = ours()
        trl_sft_kit.formats.format_names()
        trl_sft_kit.formats.format_names()
        print(json.dumps([at_import, ours()]))
        """,
    )
    assert out == [[], ["trl_sft_kit.formats"]]


OVERRIDES = """
    import json
    from trl_sft_kit.errors import PluginError
    from trl_sft_kit.formats import FormatMatch, format_names, get_format, register_format

    class Mine:
        name = "qa_pairs"
        canonical = "text"
        def match(self, row, options):
            return FormatMatch.no("never")
        def convert(self, row, options):
            return {"text": ""}

    def attempt(call):
        try:
            return call()
        except PluginError as exc:
            return "PluginError: " + str(exc)

    out = {}
    out["before_use"] = attempt(lambda: repr(register_format(Mine(), replace=REPLACE)))
    out["lookup"] = attempt(lambda: type(get_format("qa_pairs")).__name__)
    out["names"] = attempt(lambda: format_names().count("qa_pairs"))
    out["again"] = attempt(lambda: repr(register_format(Mine())))
    print(json.dumps(out))
"""


def test_registering_a_plugin_name_on_purpose_replaces_the_entry_point(plugin_site: Path) -> None:
    out = run_isolated(plugin_site, OVERRIDES.replace("REPLACE", "True"))
    assert out["before_use"] == "<Mine 'qa_pairs' from user code>"
    assert out["lookup"] == "Mine"
    assert out["names"] == 1
    assert out["again"].startswith(
        "PluginError: a format detector named 'qa_pairs' is already registered by user"
    )


def test_registering_a_plugin_name_by_accident_is_reported_on_use(plugin_site: Path) -> None:
    out = run_isolated(plugin_site, OVERRIDES.replace("REPLACE", "False"))
    assert out["before_use"] == "<Mine 'qa_pairs' from user code>"
    for key in ("lookup", "names"):
        assert out[key].startswith(
            "PluginError: tiny-sft-plugin 0.3.1 declares a format detector named 'qa_pairs'"
        )
        assert "user code already provides one" in out[key]
        assert f"{DISABLE_ENV}=qa_pairs" in out[key]


def test_registering_over_a_discovered_entry_point_needs_replace(plugin_site: Path) -> None:
    out = run_isolated(
        plugin_site,
        """
        import json, sys
        from trl_sft_kit.errors import PluginError
        from trl_sft_kit.formats import FormatMatch, format_names, get_format, register_format

        class Mine:
            name = "qa_pairs"
            canonical = "text"
            def match(self, row, options):
                return FormatMatch.no("never")
            def convert(self, row, options):
                return {"text": ""}

        format_names()
        try:
            register_format(Mine())
            clash = None
        except PluginError as exc:
            clash = str(exc)
        register_format(Mine(), replace=True)
        print(json.dumps([clash, type(get_format("qa_pairs")).__name__, "tiny_sft_plugin" in sys.modules]))
        """,
    )
    clash, kind, imported = out
    assert "named 'qa_pairs' is already registered by tiny-sft-plugin 0.3.1" in clash
    assert "replace=True" in clash
    assert (kind, imported) == ("Mine", False)
