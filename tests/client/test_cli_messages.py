"""The CLI's error messages: one clean line, the right section's fields, "did you mean"."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlab.client.cli import main

BASE = """kind: faults
model: {name: MODEL}
dataset: {name: digits, DATASET}
faults: {fault_model: bitflip, FAULTS}
"""


def _validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], *, model: str = "digits_cnn",
              dataset: str = "split: test", faults: str = "target: weight",
              deep: bool = False) -> str:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE.replace("MODEL", model).replace("DATASET", dataset)
                    .replace("FAULTS", faults))
    code = main(["validate", str(spec), *(["--deep"] if deep else [])])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line per error
    assert "Value error" not in err
    return lines[0]


def test_unknown_top_level_field_suggests(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = _validate(tmp_path, capsys, faults="fault_modle: bitflip")
    assert line.startswith("error: faults.fault_modle: unknown field; did you mean 'fault_model'?")


def test_nested_unknown_field_lists_that_section(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    line = _validate(tmp_path, capsys, dataset="splt: test")
    assert "dataset.splt: unknown field; did you mean 'split'?" in line
    allowed = line.split("(allowed: ")[1].rstrip(")").split(", ")
    assert "split" in allowed and "size" in allowed
    assert "execution" not in allowed and "kind" not in allowed  # not the top-level fields


def test_enum_value_is_listed_once_with_a_suggestion(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    line = _validate(tmp_path, capsys, faults="target: wieght")
    assert line.startswith("error: faults.target: unknown value 'wieght'; did you mean 'weight'?")
    assert line.count("'bias'") + line.count(" bias") == 1  # allowed values once
    assert "Input should be" not in line


def test_registered_method_suggests(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("kind: faults\nmodel: {name: digits_cnn}\ndataset: {name: digits}\n"
                    "faults: {fault_model: bitflop}\n")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: faults.fault_model: unknown fault model 'bitflop'; did you mean "
                   "'bitflip'? (allowed: adjacent_bitflip, bitflip, multi_bitflip, random_value, "
                   "stuck_at_0, stuck_at_1, zero)")


def test_model_dataset_and_layer_names_suggest(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    line = _validate(tmp_path, capsys, model="digits_cn", deep=True)
    assert "model.name" in line and "did you mean 'digits_cnn'?" in line
    spec = tmp_path / "ds.yaml"
    spec.write_text("kind: faults\nmodel: {name: digits_cnn}\ndataset: {name: digitz}\n")
    assert main(["validate", "--deep", str(spec)]) == 2
    assert "did you mean 'digits'?" in capsys.readouterr().err
    line = _validate(tmp_path, capsys, faults="layers: [conv1, conv3]", deep=True)
    assert "faults.layers: unknown layer 'conv3'" in line and "did you mean 'conv" in line


def test_transform_name_suggests() -> None:
    from faultlab.errors import SpecError
    from faultlab.workers.transforms import TRANSFORMS

    with pytest.raises(SpecError) as info:
        TRANSFORMS.get("magnitud", "transforms[0].name")
    assert "unknown transform 'magnitud'; did you mean 'magnitude'?" in str(info.value)
