"""The wire contract and the public surface stay what they claim to be."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import faultlab

ROOT = Path(__file__).resolve().parent.parent


def test_generated_protobuf_matches_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         str(ROOT / "proto/faultlab/v1/faultlab.proto")],
        check=True,
    )
    for name in ("faultlab_pb2.py", "faultlab_pb2.pyi", "faultlab_pb2_grpc.py"):
        fresh = (tmp_path / "faultlab/v1" / name).read_text()
        committed = (ROOT / "core/v1" / name).read_text()
        assert fresh == committed, f"core/v1/{name} is stale: run `make proto`"


def test_public_surface() -> None:
    assert sorted(faultlab.__all__) == sorted([
        "ArgumentError", "CampaignCancelledError", "CampaignFailedError", "CampaignHandle",
        "CampaignSpec",
        "CampaignState", "CampaignStatus", "Client", "Event", "FailedPreconditionError",
        "FaultlabError", "NotFoundError", "PermissionDeniedError", "Report", "ReplayResult",
        "Results",
        "ResourceExhaustedError", "SpecError", "UnauthenticatedError", "UnavailableError",
        "parse_spec",
    ])
    for name in faultlab.__all__:
        assert getattr(faultlab, name) is not None


def test_spec_module_imports_no_torch() -> None:
    code = ("import sys, faultlab.spec as s; s.parse_spec({'kind': 'faults', 'faults': "
            "{'sampling': 'uniform', 'trials': 3}}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_errors_and_events_import_no_grpc_nor_pandas() -> None:
    code = ("import sys, faultlab.errors, faultlab.events; "
            "assert 'grpc' not in sys.modules and 'pandas' not in sys.modules, "
            "[m for m in ('grpc', 'pandas') if m in sys.modules]")
    subprocess.run([sys.executable, "-c", code], check=True)
