"""Specs are data: bounded text, no alias bombs, no deep nesting, no path reading, short echoes,
and the cross-field rules of the model and dataset sources."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from faultlab.errors import ResourceExhaustedError, SpecError
from faultlab.spec import (
    CampaignSpec,
    ModelSpec,
    is_digest,
    parse_spec,
    require_uploaded,
    workload_label,
)
from faultlab.spec_text import MAX_ECHO, MAX_SPEC_BYTES, load_spec_text, read_spec_file

DIGEST = "sha256:" + "ab" * 32
LOL = ", ".join(['"lol"'] * 9)


def alias_bomb(levels: int = 9) -> str:
    """The billion laughs in YAML: each level holds nine aliases of the previous one."""
    lines = [f"l0: &l0 [{LOL}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "kind: faults\ndataset:\n  options:\n" + "\n".join(
        "    " + line for line in lines) + "\n"


def spec(**model: Any) -> dict[str, Any]:
    return {"kind": "faults", "model": model}


def test_alias_bomb_fails_fast() -> None:
    start = time.perf_counter()
    with pytest.raises(SpecError, match="too many YAML aliases") as info:
        parse_spec(alias_bomb())
    assert time.perf_counter() - start < 1
    assert info.value.field == "spec"


def test_few_aliases_that_still_expand_too_far_fail_fast() -> None:
    text = "a: &a [" + ", ".join(["1"] * 60) + "]\n"
    for name, prev in zip("bcdefgh", "abcdefg", strict=True):
        text += f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    start = time.perf_counter()
    with pytest.raises(SpecError, match="once YAML aliases are expanded"):
        load_spec_text(text)
    assert time.perf_counter() - start < 1
    with pytest.raises(SpecError, match="recursive YAML alias"):
        load_spec_text("a: &a [*a]")


def test_a_few_aliases_are_fine() -> None:
    data = load_spec_text("base: &b {x: 1}\nfirst: *b\nsecond: *b\n")
    assert data["first"] == data["second"] == {"x": 1}


def test_oversized_spec_is_resource_exhausted_before_parsing() -> None:
    text = "kind: faults\nname: " + "x" * (5 << 20) + "\n"
    start = time.perf_counter()
    with pytest.raises(ResourceExhaustedError, match="exceeds the limit") as info:
        parse_spec(text)
    assert time.perf_counter() - start < 0.5
    assert info.value.code == "RESOURCE_EXHAUSTED"
    assert "x" * 100 not in str(info.value)
    assert len(("kind: faults\n" + "#" * (MAX_SPEC_BYTES - 20)).encode()) < MAX_SPEC_BYTES
    load_spec_text("kind: faults\n" + "#" * (MAX_SPEC_BYTES - 20))  # just under: parsed


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "a:\n" + "".join(
    " " * i + f"k{i}:\n" for i in range(1, 200))])
def test_depth_bomb_is_refused(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(SpecError, match="nested deeper than"):
        load_spec_text(text)
    assert time.perf_counter() - start < 1


def test_a_string_is_never_read_as_a_path(tmp_path: Path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text("kind: faults\n")
    with pytest.raises(SpecError, match="never read as a path"):
        parse_spec(str(path))
    assert parse_spec(path).kind == "faults"  # a Path is the SDK/CLI's explicit choice
    assert read_spec_file(path)["kind"] == "faults"
    with pytest.raises(SpecError, match="does not exist"):
        read_spec_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize("bad", [
    {"kind": "faults", "name": "y" * 10_000},
    {"kind": "faults", "seed": "z" * 10_000},
    {"kind": "faults", "model": {"name": "w" * 10_000}},
    {"kind": "faults", "model": {"name": "exported", "file": "v" * 4000}, "x": 1},
])
def test_errors_echo_a_short_prefix(bad: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(bad)
    assert len(str(info.value)) < 300
    longest_run = max(len(run) for run in str(info.value).replace("'", " ").split())
    assert longest_run <= MAX_ECHO


@pytest.mark.parametrize(("model", "field", "problem"), [
    ({"name": "exported"}, "model.file", "is required"),
    ({"name": "exported", "file": DIGEST, "weights": "random"}, "model.weights", "carries"),
    ({"name": "exported", "file": DIGEST, "options": {"a": 1}}, "model.options", "carries"),
    ({"name": "pyg:GCN"}, "model.file", "exactly one"),
    ({"name": "pyg:GCN", "file": DIGEST, "weights": "random"}, "model.file", "exactly one"),
    ({"name": "torchvision:resnet18"}, "model.file", "exactly one"),
    ({"name": "custom", "weights": "random"}, "model.factory", "is required"),
    ({"name": "custom", "factory": "lab.models:build"}, "model.file", "exactly one"),
    ({"name": "digits_cnn", "file": "w.safetensors"}, "model.file", "zoo model"),
    ({"name": "digits_cnn", "weights": "random"}, "model.weights", "zoo model"),
    ({"name": "digits_cnn", "factory": "lab.models:build"}, "model.factory", "only for"),
    ({"name": "custom", "factory": "lab.models:build", "weights": "/etc/passwd"},
     "model.weights", "random"),
    ({"name": "pyg GCN", "weights": "random"}, "model.name", "pattern"),
])
def test_model_source_rules(model: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as info:
        parse_spec(spec(**model))
    assert info.value.field == field


@pytest.mark.parametrize("model", [
    {"name": "digits_cnn"},
    {"name": "exported", "file": "model.pt2"},
    {"name": "pyg:GAT", "weights": "random", "options": {"heads": 2}},
    {"name": "torchvision:resnet18", "file": "w.safetensors", "label": "resnet18 (mine)"},
    {"name": "custom", "factory": "lab.models:build", "weights": "random"},
])
def test_valid_model_sources(model: dict[str, Any]) -> None:
    assert parse_spec(spec(**model)).model == ModelSpec(**model)


@pytest.mark.parametrize(("dataset", "field", "problem"), [
    ({"name": "tensors"}, "dataset.file", "is required"),
    ({"name": "digits", "file": DIGEST}, "dataset.file", "only for name 'tensors'"),
    ({"name": "custom"}, "dataset.factory", "is required"),
    ({"name": "digits", "factory": "lab.data:load"}, "dataset.factory", "only for"),
])
def test_dataset_source_rules(dataset: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as info:
        parse_spec({"kind": "faults", "dataset": dataset})
    assert info.value.field == field


def test_rules_name_the_field_inside_a_kind_section() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"kind": "faults", "faults": {"compare_models": [{"name": "exported"}]}})
    assert info.value.field == "faults.compare_models.0.file"


def uploaded(model: dict[str, Any], dataset: dict[str, Any] | None = None) -> CampaignSpec:
    return parse_spec({**spec(**model), "dataset": dataset or {"name": "digits"}})


def test_require_uploaded_accepts_digests_only() -> None:
    require_uploaded(uploaded({"name": "exported", "file": DIGEST},
                              {"name": "tensors", "file": DIGEST}))
    with pytest.raises(SpecError, match="SDK and CLI upload") as info:
        require_uploaded(uploaded({"name": "exported", "file": "/srv/secret/model.pt2"}))
    assert info.value.field == "model.file"
    with pytest.raises(SpecError) as info:
        require_uploaded(uploaded({"name": "digits_cnn"}, {"name": "tensors", "file": "d.st"}))
    assert info.value.field == "dataset.file"
    compare = parse_spec({"kind": "faults", "faults": {"compare_models": [
        {"name": "exported", "file": "../../etc/model.pt2"}]}})
    with pytest.raises(SpecError) as info:
        require_uploaded(compare)
    assert info.value.field == "faults.compare_models.0.file"


def test_workload_labels_never_say_custom_at_custom() -> None:
    custom = parse_spec({**spec(name="custom", factory="lab.models:build", weights="random"),
                         "dataset": {"name": "custom", "factory": "lab.data:load"}})
    assert workload_label(custom) == "lab.models.build@lab.data.load"
    labelled = uploaded({"name": "exported", "file": DIGEST, "label": "my_resnet"},
                        {"name": "tensors", "file": DIGEST, "label": "cifar_subset"})
    assert workload_label(labelled) == "my_resnet@cifar_subset"
    assert workload_label(uploaded({"name": "pyg:GCN", "weights": "random"})) == "pyg:GCN@digits"
    with pytest.raises(SpecError):
        parse_spec(spec(name="digits_cnn", label="x\ny"))


@pytest.mark.parametrize("text", ["seed: " + "9" * 5000, "a: !!python/object/apply:os.system [id]"])
def test_unconvertible_or_unsafe_scalars_are_spec_errors(text: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(text)
    assert info.value.field == "spec" and len(str(info.value)) < 200


def test_a_digest_is_exactly_sha256_and_64_hex() -> None:
    assert is_digest(DIGEST)
    for bad in (DIGEST + "\n", DIGEST.upper(), DIGEST[:-1], "sha512:" + "ab" * 32, None):
        assert not is_digest(bad)
