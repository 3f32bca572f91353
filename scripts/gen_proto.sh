#!/usr/bin/env bash
# Regenerates core/v1/*_pb2*.py (imported as faultlab.v1) from proto/ (the wire contract).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -m grpc_tools.protoc -Iproto --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" proto/faultlab/v1/faultlab.proto
cp "$tmp"/faultlab/v1/faultlab_pb2.py "$tmp"/faultlab/v1/faultlab_pb2.pyi "$tmp"/faultlab/v1/faultlab_pb2_grpc.py core/v1/
