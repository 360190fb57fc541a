#!/usr/bin/env bash
# Runs the whole test suite: the unit tests and the integration tests, which start a real
# Kubernetes control plane (etcd and kube-apiserver on loopback) and the Google Cloud
# emulator themselves. The first run builds kube-apiserver (see hack/control-plane.sh).
#
# Extra arguments go to `cargo test`, for example:
#   hack/test.sh --test control_plane_smoke        # one integration test binary
#   hack/test.sh -- --nocapture                    # show the tests' output
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBEBUILDER_ASSETS="$(hack/control-plane.sh)"
export KUBEBUILDER_ASSETS
echo "test: control plane binaries from $KUBEBUILDER_ASSETS" >&2

exec cargo test --workspace --locked "$@"
