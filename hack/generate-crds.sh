#!/usr/bin/env bash
# Writes the CustomResourceDefinitions generated from the Rust types into crds/ and into the
# Helm chart's crds/ directory, one file per CRD.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p crds
cargo run --quiet --locked -- crd --output-dir crds
if [ -d charts/jit-groups-controller ]; then
  mkdir -p charts/jit-groups-controller/crds
  cp crds/*.yaml charts/jit-groups-controller/crds/
fi
