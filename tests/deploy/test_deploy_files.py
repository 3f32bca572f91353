"""deploy/ checked statically: no Docker engine or Kubernetes is needed to catch a broken
compose file, manifest or image recipe (issue 13)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _serve_args(command: str) -> list[str]:
    """The arguments of the ``faultlab serve`` in a shell command line."""
    words = shlex.split(command.split("faultlab serve", 1)[1])
    return words[: words.index("&&")] if "&&" in words else words


def _parses_as_serve(args: list[str]) -> None:
    from faultlab.client.cli import build_parser

    parsed = build_parser().parse_args(["serve", *args])
    assert parsed.fn.__name__ == "cmd_serve"


def test_compose_services_and_an_aof_redis() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]
    assert set(services) == {"redis", "ray-head", "ray-worker", "coordinator"}
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert set(services["coordinator"]["depends_on"]) >= {"redis", "ray-head"}
    command = services["coordinator"]["command"][-1]
    assert "exec faultlab serve" in command  # SIGTERM reaches the coordinator: it drains
    args = _serve_args(command)
    assert "redis://redis:6379/0" in args and "auto" in args
    _parses_as_serve(args)
    assert ":?" in services["coordinator"]["environment"]["FAULTLAB_TOKENS"]  # required
    for name in ("ray-head", "ray-worker", "coordinator"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / services[name]["build"]["context"]).resolve() == ROOT


def test_kuberay_manifests() -> None:
    docs = [d for f in sorted((DEPLOY / "kuberay").glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("ray.io/v1", "RayCluster", "faultlab"),
            ("apps/v1", "Deployment", "faultlab-coordinator"),
            ("v1", "Service", "faultlab"),
            ("apps/v1", "StatefulSet", "faultlab-redis"),
            ("v1", "Service", "faultlab-redis")} <= kinds
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert cluster["spec"]["headGroupSpec"] and cluster["spec"]["workerGroupSpecs"]
    redis = next(d for d in docs if d["kind"] == "StatefulSet")
    assert "--appendonly" in redis["spec"]["template"]["spec"]["containers"][0]["args"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1 and pod["terminationGracePeriodSeconds"] >= 10
    command = pod["containers"][0]["command"][-1]
    args = _serve_args(command)
    assert "--tokens-file" in args and f"{cluster['metadata']['name']}-head-svc" in command
    assert "redis://faultlab-redis:6379/0" in args
    _parses_as_serve(args)


def test_dockerfile_copies_real_paths() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+)$", text, flags=re.M)
    assert copies
    for line in copies:
        *sources, _target = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
    packages = {s for line in copies for s in line.split()[:-1]}
    assert {"core", "server", "workers", "client", "proto"} <= packages
    ray_tag = re.search(r"^FROM rayproject/ray:([\d.]+)", text, flags=re.M)
    import ray

    assert ray_tag and ray_tag.group(1) == ray.__version__  # the Ray the tests run
    assert re.search(r'^CMD \["faultlab", "serve"', text, flags=re.M)
