#!/usr/bin/env bash
# Runs jit-groups-controller locally, end to end, on real parts: builds it, starts a
# Kubernetes control plane (etcd + kube-apiserver) and the Google Cloud emulator on loopback,
# starts the controller, applies examples/ (an environment, two groups, a join request),
# waits until the request is Active, and shows what Kubernetes and "Google" now hold.
#
#   hack/demo.sh          start (stopping an earlier demo first)
#   hack/demo.sh stop     stop everything the demo started
#
# Everything stays running afterwards; the last line says how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state="${JIT_DEMO_DIR:-${TMPDIR:-/tmp}/jit-groups-demo}"
emulator_address="${JIT_DEMO_EMULATOR:-127.0.0.1:18085}"
metrics_address="${JIT_DEMO_METRICS:-127.0.0.1:18080}"

say() { printf '\n==> %s\n' "$*"; }

stop() {
  for name in controller emulator control-plane; do
    pid_file="$state/$name.pid"
    if [ -f "$pid_file" ]; then
      pid=$(cat "$pid_file")
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      fi
      rm -f "$pid_file"
    fi
  done
}

if [ "${1:-}" = "stop" ]; then
  stop
  echo "demo stopped"
  exit 0
fi

stop
mkdir -p "$state"

say "Building the controller, the emulator and the local control plane"
cargo build --locked --workspace --bins
bin="$root/target/debug"

say "Providing etcd and kube-apiserver"
KUBEBUILDER_ASSETS=$(hack/control-plane.sh)
export KUBEBUILDER_ASSETS

say "Starting the control plane"
rm -f "$state/kubeconfig-path"
"$bin/local-control-plane" "$state/kubeconfig-path" >"$state/control-plane.log" 2>&1 &
echo $! >"$state/control-plane.pid"
for _ in $(seq 600); do
  [ -s "$state/kubeconfig-path" ] && break
  kill -0 "$(cat "$state/control-plane.pid")" 2>/dev/null || { cat "$state/control-plane.log"; exit 1; }
  sleep 0.2
done
[ -s "$state/kubeconfig-path" ] || { echo "the control plane did not start"; cat "$state/control-plane.log"; exit 1; }
KUBECONFIG=$(cat "$state/kubeconfig-path")
export KUBECONFIG
kubectl version 2>/dev/null | sed -n 's/^Server Version: /kube-apiserver /p'

say "Starting the Google Cloud emulator on $emulator_address"
"$bin/gcp-emulator" --listen "$emulator_address" --seed examples/emulator-seed.json \
  >"$state/emulator.log" 2>&1 &
echo $! >"$state/emulator.pid"
for _ in $(seq 100); do
  curl -sf "http://$emulator_address/emulator/v1/state" >/dev/null && break
  sleep 0.1
done

say "Starting the controller (metrics on http://$metrics_address/metrics)"
"$bin/jit-groups-controller" run \
  --google-endpoint "http://$emulator_address/" \
  --google-access-token demo-controller-token \
  --metrics-address "$metrics_address" \
  >"$state/controller.log" 2>&1 &
echo $! >"$state/controller.pid"

say "Applying the environment and the groups"
kubectl apply -f examples/00-environment.yaml -f examples/10-group-db-readers.yaml \
  -f examples/11-group-server-admins.yaml
kubectl -n jit-prod wait --for=condition=Ready jitgroup --all --timeout=60s

say "Alice asks to join db-readers for two hours"
started=$(date +%s.%N)
kubectl apply -f examples/20-joinrequest.yaml
kubectl -n jit-prod wait --for=jsonpath='{.status.phase}'=Active \
  joinrequest/alice-db-readers --timeout=60s
finished=$(date +%s.%N)
python3 -c "print(f'join request Active {$finished - $started:.2f} s after kubectl apply')"

say "kubectl get joinrequests,jitgroups -n jit-prod"
kubectl get joinrequests,jitgroups -n jit-prod

say "What the emulated Google Cloud now holds"
curl -sf "http://$emulator_address/emulator/v1/state" | python3 hack/show-emulator-state.py

cat <<TXT

Everything is still running: kubectl works with
  export KUBECONFIG=$KUBECONFIG
logs are in $state/, the emulator's state is at http://$emulator_address/emulator/v1/state.
Stop it all with: hack/demo.sh stop
TXT
