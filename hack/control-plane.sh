#!/usr/bin/env bash
# Provides the etcd and kube-apiserver binaries that the integration tests and the local
# demo run, and prints the directory that holds both. Also makes sure a kubectl exists,
# since the tests drive kubectl as their users.
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, when it holds both binaries (the envtest convention, for users
#      who bring newer Kubernetes versions);
#   2. the cache under $JIT_CACHE_DIR (default ~/.cache/jit-groups-controller), filled by
#      an earlier run;
#   3. etcd from Debian's etcd-server package and kube-apiserver built from Debian's
#      kubernetes source package (1.20.2), then cached. This takes about ten minutes and
#      1.3 GB of memory once; later runs take seconds. The 2 GB build tree is removed
#      afterwards; only the 110 MB binary stays in the cache.
#
# kubectl: any kubectl on PATH, else Debian's kubernetes-client package (1.20.2).
#
# Everything except the final directory goes to stderr, so callers can write
#   export KUBEBUILDER_ASSETS="$(hack/control-plane.sh)"
set -euo pipefail

log() { echo "control-plane: $*" >&2; }

has_both() { [ -x "$1/etcd" ] && [ -x "$1/kube-apiserver" ]; }

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    if [ -z "$apt_updated" ]; then
      sudo_if_needed apt-get update -qq >&2
      apt_updated=1
    fi
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

if ! command -v kubectl >/dev/null 2>&1; then
  apt_install kubernetes-client
fi

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && has_both "$KUBEBUILDER_ASSETS"; then
  log "using binaries from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

base="${JIT_CACHE_DIR:-$HOME/.cache/jit-groups-controller}"
cache="$base/control-plane"
if has_both "$cache"; then
  log "using cached binaries in $cache"
  echo "$cache"
  exit 0
fi

mkdir -p "$cache"

# etcd 3.4 from Debian.
if [ ! -x "$cache/etcd" ]; then
  apt_install etcd-server
  ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$cache/etcd"
fi

if [ -x "$cache/kube-apiserver" ]; then
  echo "$cache"
  exit 0
fi

# kube-apiserver from Debian's kubernetes source package.
apt_install golang-go rsync dpkg-dev golang-github-modern-go-reflect2-dev make \
  debian-archive-keyring ca-certificates

sources=/etc/apt/sources.list.d/jit-groups-controller-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ \
  && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  log "adding a deb-src entry for bookworm main"
  sudo_if_needed tee "$sources" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  sudo_if_needed apt-get update -qq >&2
fi

build="$base/kubernetes-build"
mkdir -p "$build"
tree=$(find "$build" -maxdepth 1 -type d -name 'kubernetes-1.*' | head -n 1)
# A tree without the marker is what an interrupted extraction left behind.
if [ -n "$tree" ] && [ ! -e "$tree/.jit-extracted" ]; then
  log "removing the incomplete source tree $tree"
  rm -rf "$tree"
  tree=
fi
if [ -z "$tree" ]; then
  log "fetching Debian's kubernetes source package"
  (cd "$build" && apt-get source -qq kubernetes >&2)
  tree=$(find "$build" -maxdepth 1 -type d -name 'kubernetes-1.*' | head -n 1)
  [ -n "$tree" ] || { log "kubernetes source tree not found in $build"; exit 1; }
  touch "$tree/.jit-extracted"
fi

# The vendored reflect2 1.0.1 crashes kube-apiserver under Go >= 1.18; 1.0.2 does not.
reflect2="$tree/vendor/github.com/modern-go/reflect2"
if ! grep -qs 'go1.18' "$reflect2"/*.go 2>/dev/null; then
  log "replacing vendored reflect2 with Debian's 1.0.2"
  rm -rf "$reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$reflect2"
fi

gopath="$build/gopath"
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"

log "building kube-apiserver (about ten minutes on two cores)"
started=$(date +%s)
(
  cd "$gopath/src/k8s.io/kubernetes"
  GOPATH="$gopath" GO111MODULE=off GOFLAGS=-mod=vendor CGO_ENABLED=0 \
    GOCACHE="$build/gocache" make WHAT=cmd/kube-apiserver >&2
)
binary=$(find "$tree/_output" -type f -name kube-apiserver -perm -u+x | head -n 1)
[ -n "$binary" ] || { log "build finished but no kube-apiserver binary was found"; exit 1; }
cp "$binary" "$cache/kube-apiserver.tmp"
mv "$cache/kube-apiserver.tmp" "$cache/kube-apiserver"
log "kube-apiserver built in $(( $(date +%s) - started ))s"
rm -rf "$build"

echo "$cache"
