#!/usr/bin/env bash
# Remote-data benchmark (issue 14, BENCHMARKS.md "Remote data"): `annomask compute` over a
# crop on a local S3-compatible server (moto), directly and through scripts/delay_proxy.py,
# which holds every request 20 ms; and the feeder, local vs the same crop on S3 behind the
# proxy. Prints a markdown table of wall times and throughput ratios measured in one run.
#
#   bash scripts/remote-bench.sh [SIZE] [ROUNDS]      # default 256^3 uint64 voxels, 3 rounds
#
# Needs: a release build (cargo build --release), python3, and moto_server (pip install
# 'moto[server]'), found as for the tests (ANNOMASK_MOTO_SERVER, /tmp/annomask-ref, /tmp/annomask-py, PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-256}
ROUNDS=${2:-3}
DELAY_MS=${DELAY_MS:-20}
BIN=target/release/annomask
MOTO=${ANNOMASK_MOTO_SERVER:-}
for c in /tmp/annomask-ref/bin/moto_server /tmp/annomask-py/bin/moto_server "$(command -v moto_server || true)"; do
  if [ -z "$MOTO" ] && [ -x "$c" ]; then MOTO=$c; fi
done
[ -n "$MOTO" ] || { echo "no moto_server: pip install 'moto[server]'"; exit 1; }
WORK=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3_PORT=$(free_port)
"$MOTO" -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
python3 scripts/delay_proxy.py --listen 127.0.0.1:0 --target "127.0.0.1:$S3_PORT" --delay-ms "$DELAY_MS" \
  --port-file "$WORK/proxy.port" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
trap 'kill $MOTO_PID $PROXY_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
  [ -s "$WORK/proxy.port" ] && curl -s -o /dev/null "http://127.0.0.1:$S3_PORT" && break
  sleep 0.2
done
PROXY_PORT=$(cat "$WORK/proxy.port")
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
DIRECT=http://127.0.0.1:$S3_PORT
PROXIED=http://127.0.0.1:$PROXY_PORT
curl -s -X PUT "$DIRECT/bench" -o /dev/null
# The crop: synthesised and uploaded by `demo --out s3://...` (64^3 chunks of uint64).
AWS_ENDPOINT_URL=$DIRECT "$BIN" demo --engine cpu --size "$SIZE" --out s3://bench/base >/dev/null
cat >"$WORK/g.json" <<'G'
[["mito", [3, 4, 5]], ["er", [16, 17]], ["nucleus", [20, 21]], ["ecs", [1]], ["all", []]]
G
INPUT=s3://bench/base/demo_crop.zarr/labels
timed() { # label endpoint args...
  local label=$1 endpoint=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  AWS_ENDPOINT_URL=$endpoint "$BIN" "$@" >/dev/null
  t1=$(date +%s.%N)
  echo "$label $(python3 -c "print(f'{$t1-$t0:.3f}')")" >>"$WORK/times"
}
n=0
for r in $(seq "$ROUNDS"); do
  for case in direct proxied proxied-2-readers local; do
    n=$((n+1))
    case $case in
      direct) timed "compute/no-latency" "$DIRECT" compute "$INPUT" --groupings "$WORK/g.json" --out "s3://bench/o$n.zarr" --engine cpu --quiet ;;
      proxied) timed "compute/${DELAY_MS}ms" "$PROXIED" compute "$INPUT" --groupings "$WORK/g.json" --out "s3://bench/o$n.zarr" --engine cpu --quiet ;;
      proxied-2-readers) timed "compute/${DELAY_MS}ms,--readers-2--writers-2" "$PROXIED" compute "$INPUT" --groupings "$WORK/g.json" --out "s3://bench/o$n.zarr" --engine cpu --quiet --readers 2 --writers 2 ;;
      local)
        if [ ! -d "$WORK/local" ]; then "$BIN" demo --engine cpu --size "$SIZE" --out "$WORK/local" >/dev/null; fi
        timed "compute/local-disk" "$DIRECT" compute "$WORK/local/demo_crop.zarr/labels" --groupings "$WORK/g.json" --out "$WORK/o$n.zarr" --engine cpu --quiet ;;
    esac
  done
done
# Feeder (Python binding, where it is installed): 64^3 ROIs, batches of 4, local vs S3 behind
# the proxy, default prefetch (4) and chunk cache (1 GiB): the first epoch fetches each chunk,
# later batches hit the cache.
PY=${PYTHON:-/tmp/annomask-py/bin/python}
if "$PY" -c "import annomask" 2>/dev/null; then
  for r in $(seq "$ROUNDS"); do
    for where in local proxied; do
      src=$WORK/local/demo_crop.zarr/labels; ep=$DIRECT
      if [ "$where" = proxied ]; then src=$INPUT; ep=$PROXIED; fi
      AWS_ENDPOINT_URL=$ep "$PY" - "$src" "$where" "$WORK/times" <<'PYF'
import os, sys, time, annomask
src, where, out = sys.argv[1:4]
g = [("mito", [3, 4, 5]), ("er", [16, 17]), ("nucleus", [20, 21]), ("ecs", [1]), ("all", [])]
f = annomask.Feeder(src, (64, 64, 64), groupings=g, engine="cpu", batch_size=4, batches=int(os.environ.get("FEED_BATCHES", "40")), seed=1)
t0 = time.perf_counter(); n = sum(1 for _ in f); dt = time.perf_counter() - t0
open(out, "a").write(f"feeder-batches/s/{where} {n/dt:.3f}\n")
PYF
    done
  done
fi
python3 - "$WORK/times" "$SIZE" <<'PY'
import os, sys, collections, statistics
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, v = line.split(); times[k].append(float(v))
size = int(sys.argv[2]); vox = size ** 3
base = statistics.median(times["compute/no-latency"])
print(f"| compute, {size}^3 uint64, 64^3 chunks, 5 channels | median wall (s) | Mvoxel/s | vs no latency |")
print("| --- | --- | --- | --- |")
for k, v in times.items():
    if k.startswith("feeder"):
        continue
    m = statistics.median(v)
    print(f"| {k} | {m:.2f} ({', '.join(f'{x:.2f}' for x in v)}) | {vox/m/1e6:.1f} | {base/m:.2f} |")
if "feeder-batches/s/local" in times:
    loc = statistics.median(times["feeder-batches/s/local"])
    rem = statistics.median(times.get("feeder-batches/s/proxied", [0]))
    print()
    nb = os.environ.get("FEED_BATCHES", "40")
    print(f"| feeder, 64^3 ROIs, batches of 4, {nb} batches | batches/s (median) | vs local |")
    print("| --- | --- | --- |")
    print(f"| local disk | {loc:.1f} ({', '.join(f'{x:.1f}' for x in times['feeder-batches/s/local'])}) | 1.00 |")
    print(f"| S3 + 20 ms a request | {rem:.1f} ({', '.join(f'{x:.1f}' for x in times.get('feeder-batches/s/proxied', []))}) | {rem/loc:.2f} |")
PY
