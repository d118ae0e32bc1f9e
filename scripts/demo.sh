#!/usr/bin/env bash
# Builds Skiff, starts a local 3-node control plane on loopback ports, shows the cluster's
# status, and runs the SDK demo workload (client/examples/basic.rs) against it.
#
#   scripts/demo.sh          run the demo, then stop the cluster and remove its data
#   scripts/demo.sh --keep   leave the cluster running (prints how to stop it)
set -euo pipefail
cd "$(dirname "$0")/.."

keep=false
[[ "${1:-}" == "--keep" ]] && keep=true
base_port="${SKIFF_DEMO_PORT:-7001}"

cargo build --release --quiet -p skiff-control-plane --bin skiff-control-plane -p skiff-cli --bin skiff
cargo build --release --quiet -p skiff-client --example basic --example cluster_status

data="$(mktemp -d -t skiff-demo-XXXXXX)"
peers=""
for id in 1 2 3; do
  peers+="${peers:+,}$id=127.0.0.1:$((base_port + id - 1))"
done
endpoints="127.0.0.1:${base_port},127.0.0.1:$((base_port + 1)),127.0.0.1:$((base_port + 2))"

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$data"
}
$keep || trap stop EXIT

# The cluster token (every member gets the same file; the CA derives from it).
(umask 077 && target/release/skiff token generate >"$data/token")

for id in 1 2 3; do
  port=$((base_port + id - 1))
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (is a demo cluster already running?); set SKIFF_DEMO_PORT" >&2
    exit 1
  fi
  target/release/skiff-control-plane --id "$id" --data-dir "$data/node-$id" \
    --listen "127.0.0.1:$port" --peers "$peers" --token-file "$data/token" \
    >"$data/node-$id.log" 2>&1 &
  pids+=($!)
done
echo "started 3 control-plane nodes: $endpoints (data and logs in $data)"

# Member 1 writes admin.conf (every endpoint, the CA, a cluster-admin certificate) as it starts.
admin="$data/node-1/admin.conf"
for _ in $(seq 100); do [[ -s "$admin" ]] && break; sleep 0.1; done
[[ -s "$admin" ]] || { echo "no $admin: see $data/node-1.log" >&2; exit 1; }
target/release/examples/cluster_status --wait 30 --config "$admin" "$endpoints"
echo
echo "== demo workload (client/examples/basic.rs) =="
target/release/examples/basic "$admin" "$endpoints"

if $keep; then
  echo
  echo "cluster left running; use it with: target/release/skiff --config $admin get namespaces"
  echo "stop it with: kill ${pids[*]} && rm -rf $data"
fi
