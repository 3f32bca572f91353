#!/usr/bin/env bash
# Regenerates faultlab/v1/*_pb2*.py from proto/ (the wire contract).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
python -m grpc_tools.protoc -Iproto --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" proto/faultlab/v1/faultlab.proto
