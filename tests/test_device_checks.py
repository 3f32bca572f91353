"""The device checks the engines' tests rely on can fail: a factory call left to the default
device is seen by the static scan and by the run-time recorder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faultlab.workers.watermark as some_package
from tests.device_checks import DefaultDeviceCalls, default_device_calls

PACKAGE = Path(some_package.__file__).parent


def test_the_recorder_and_the_scan_see_a_factory_left_to_the_default_device() -> None:
    recorder = DefaultDeviceCalls(PACKAGE)
    source = "import torch\ndef make():\n    return torch.zeros(2), torch.ones(2, device='cpu')\n"
    scope: dict[str, Any] = {}
    exec(compile(source, str(PACKAGE / "probe.py"), "exec"), scope)  # noqa: S102 - test probe
    with recorder:
        scope["make"]()
    assert recorder.calls == ["probe.py:3 zeros"] and recorder.seen == 2
    assert list(default_device_calls(source)) == [(3, "torch.zeros")]


def test_layers_are_allowed_only_where_a_model_builds_them() -> None:
    layers = ("from torch import nn\nclass M(nn.Module):\n    def __init__(self):\n"
              "        self.a = nn.Linear(2, 2)\ndef narrow():\n    return nn.Conv2d(2, 2, 1)\n")
    assert list(default_device_calls(layers, set())) == [(6, "nn.Conv2d")]
    assert list(default_device_calls(layers, {"narrow"})) == []
    assert sorted(default_device_calls(layers)) == [(4, "nn.Linear"), (6, "nn.Conv2d")]
