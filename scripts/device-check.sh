#!/usr/bin/env bash
# One prepared command for a machine with a GPU (issue 17): sets up the Vulkan driver if it has
# to, builds annomask, records the adapter (driver, limits, what `auto` picks), runs the GPU test
# suites with REQUIRE_GPU=1, then the benchmarks with the GPU and the CPU engines side by side,
# and writes every result as JSON and text under OUT_DIR. Within 8 minutes on an NVIDIA H200
# with 16 cores (DEVICE_CHECK_BUDGET seconds, default 480: a step that would overrun is cut
# short or skipped, and said so).
#
#   bash scripts/device-check.sh OUT_DIR [--lavapipe] [--tiny] [--release] [--no-build] [--no-tests]
#
#   --lavapipe  run on the software Vulkan device (Mesa lavapipe; WGPU_BACKEND=vulkan, no driver
#               set-up); without it a hardware adapter is expected, and its absence is a failure
#   --tiny      everything shrunk to seconds (a smoke check of this script, e.g. in CI); builds
#               the dev profile (the one `cargo test` already built) unless --release is given
#   --release   the release profile also with --tiny (the default without it)
#   --no-build  use the binaries already built (target/<profile>/annomask; the tests need cargo)
#   --no-tests  skip the test suites
#
# Driver set-up (not with --lavapipe), for a bare Debian/Ubuntu machine run as root without
# network: when `.gl/` holds .deb files (the Vulkan loader, EGL) and `ldconfig -p` finds no
# libvulkan, they are unpacked into / (dpkg -x) and ldconfig runs; when the loader then finds no
# NVIDIA adapter and VK_DRIVER_FILES / VK_ICD_FILENAMES are unset, VK_DRIVER_FILES is pointed
# at /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json if it exists, else at the first
# nvidia_icd*.json under /usr/share/vulkan/icd.d or /etc/vulkan/icd.d.
#
# Files written under OUT_DIR:
#   summary.json, summary.txt      every step: status (ok, failed, timeout, no-time, skipped), seconds,
#                                  its files; test counts per suite; machine, mode, budget
#   machine.txt, nvidia-smi.txt    CPU, memory, kernel; the NVIDIA driver's view (if present)
#   driver-setup.txt               what the driver set-up did
#   build.txt                      cargo's output
#   adapter.json, adapter.txt      `annomask gpu-info`: adapters found, the one selected, its
#                                  driver and limits, auto's trial block on it, auto's choice
#   tests-*.txt                    cargo test output (REQUIRE_GPU=1)
#   bench-*.json, bench-*.txt      `annomask bench` (kernels: engines auto = cpu and gpu rows,
#                                  bytes and bit-packed, kernel-only, transfers-only; --pipeline
#                                  and --feeder once per engine)
#
# Exit status 0 when every step passed; the files are written either way.

set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPO=$(pwd)

usage() {
  sed -n '9,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

OUT=""
LAVAPIPE=0
TINY=0
RELEASE=""
BUILD=1
TESTS=1
for arg in "$@"; do
  case "$arg" in
    --lavapipe) LAVAPIPE=1 ;;
    --tiny) TINY=1 ;;
    --release) RELEASE=1 ;;
    --no-build) BUILD=0 ;;
    --no-tests) TESTS=0 ;;
    -h | --help) usage ;;
    -*) echo "device-check: unknown option $arg" >&2; usage ;;
    *)
      if [ -n "$OUT" ]; then echo "device-check: one OUT_DIR only" >&2; usage; fi
      OUT=$arg
      ;;
  esac
done
[ -n "$OUT" ] || usage
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/summary.* "$OUT"/steps.tsv "$OUT"/bench-*.json "$OUT"/bench-*.txt "$OUT"/tests-*.txt

BUDGET=${DEVICE_CHECK_BUDGET:-480}
DEADLINE=$((SECONDS + BUDGET))
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ -z "$RELEASE" ] && [ "$TINY" = 1 ]; then RELEASE=0; fi
RELEASE=${RELEASE:-1}
if [ "$RELEASE" = 1 ]; then
  PROFILE_FLAG=(--release)
  PROFILE=release
else
  PROFILE_FLAG=()
  PROFILE=debug
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$TARGET_DIR/$PROFILE/annomask
export REQUIRE_GPU=1
export ANNOMASK_DRIVER_LOG=${ANNOMASK_DRIVER_LOG:-0}
unset ANNOMASK_GPU_FAIL_AFTER

log() { echo "device-check [$((SECONDS))s]: $*" >&2; }

# Steps: name, status, seconds, files, note in steps.tsv, separated by US (0x1f: fields may be
# empty, which tabs would not keep apart for `read`). Statuses: ok; failed; timeout (cut at its
# limit); no-time (not started: the budget was spent); skipped (by an option); n/a.
SEP=$'\x1f'
record() { printf '%s\n' "$1$SEP$2$SEP$3$SEP$4$SEP$5" >>"$OUT/steps.tsv"; }

# step NAME CAP RESERVE FILES COMMAND...: runs COMMAND with stdout and stderr into NAME.txt,
# for at most CAP seconds and never into the last RESERVE seconds of the budget (kept for the
# steps after it); not started (no-time) when less than 5 seconds would be left.
step() {
  local name=$1 cap=$2 reserve=$3 files=$4
  shift 4
  local left=$((DEADLINE - SECONDS - reserve))
  local limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 5 ]; then
    log "$name: not started (budget spent)"
    record "$name" no-time 0 "" "not started: $((DEADLINE - SECONDS))s of the budget left, ${reserve}s of it kept for the steps after"
    return 1
  fi
  log "$name: $* (at most ${limit}s)"
  local t0=$SECONDS rc
  timeout -k 10 "$limit" "$@" >"$OUT/$name.txt" 2>&1
  rc=$?
  local took=$((SECONDS - t0)) status=ok note=""
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    status=timeout
    note="stopped after ${limit}s"
  elif [ "$rc" != 0 ]; then
    status=failed
    note="exit $rc: $(grep -m1 -E '^(error|thread .* panicked|test result: FAILED)' "$OUT/$name.txt" | cut -c1-300)"
  fi
  log "$name: $status (${took}s)"
  record "$name" "$status" "$took" "$name.txt${files:+ $files}" "$note"
  [ "$status" = ok ]
}

json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

# ---- machine ----
{
  echo "date: $STARTED"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"
  echo "cores: $(nproc 2>/dev/null)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null)"
  echo "kernel: $(uname -srm)"
  echo "os: $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}")"
  echo "disk (OUT_DIR): $(df -h "$OUT" 2>/dev/null | awk 'NR == 2 {print $4 " free of " $2}')"
  echo "rust: $(rustc --version 2>/dev/null || echo 'no rustc')"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo '?') ($(git status --short 2>/dev/null | wc -l) changed files)"
} >"$OUT/machine.txt"
if command -v nvidia-smi >/dev/null 2>&1; then
  {
    nvidia-smi
    echo
    nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max,pcie.link.gen.current,pcie.link.width.current,clocks.max.memory --format=csv
  } >"$OUT/nvidia-smi.txt" 2>&1
fi

# ---- driver set-up ----
{
  if [ "$LAVAPIPE" = 1 ]; then
    export WGPU_BACKEND=vulkan
    echo "--lavapipe: WGPU_BACKEND=vulkan, no driver set-up"
  elif [ -d .gl ] && ! ldconfig -p 2>/dev/null | grep -q libvulkan; then
    echo "no libvulkan known to ldconfig: unpacking .gl/*.deb into /"
    for f in .gl/*.deb; do
      [ -e "$f" ] || continue
      echo "  dpkg -x $f /"
      dpkg -x "$f" / || echo "  failed: $f"
    done
    ldconfig
  else
    echo "libvulkan: $(ldconfig -p 2>/dev/null | grep -m1 libvulkan || echo 'not found, and no .gl/ to unpack')"
  fi
  echo "nvidia libraries known to ldconfig:"
  ldconfig -p 2>/dev/null | grep -iE 'nvidia|libEGL|libGLX' | sed 's/^/  /' | head -30
  echo "ICD files:"
  for d in /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    [ -d "$d" ] && ls -1 "$d" | sed "s|^|  $d/|"
  done
} >"$OUT/driver-setup.txt" 2>&1
[ "$LAVAPIPE" = 1 ] && export WGPU_BACKEND=vulkan

# ---- build ----
TEST_TARGETS=(--test gpu_vs_cpu --test cellmap_engines --test device_loss --test cli --test cli_cellmap)
if [ "$BUILD" = 1 ]; then
  if command -v cargo >/dev/null 2>&1; then
    # One build for the binary and the test suites (the same features, so the dependencies
    # are compiled once); the binary lands in target/<profile>/annomask.
    step build 420 60 "" cargo test "${PROFILE_FLAG[@]}" --no-run "${TEST_TARGETS[@]}"
  else
    record build failed 0 "" "no cargo on this machine"
  fi
else
  record build skipped 0 "" "--no-build"
fi
if [ ! -x "$BIN" ]; then
  log "no binary at $BIN"
  record adapter failed 0 "" "no binary at $BIN"
else
  # ---- adapter ----
  probe() { "$BIN" gpu-info --json --no-trial 2>/dev/null; }
  if [ "$LAVAPIPE" = 0 ] && [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] \
    && ! probe | grep -q '"vendor": "0x10de"'; then
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [ ! -f "$icd" ]; then
      icd=$(find /usr/share/vulkan/icd.d /etc/vulkan/icd.d -name 'nvidia_icd*.json' 2>/dev/null | head -1)
    fi
    if [ -n "$icd" ] && [ -f "$icd" ]; then
      export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
      echo "the loader found no NVIDIA adapter: VK_DRIVER_FILES=$icd" >>"$OUT/driver-setup.txt"
    else
      echo "the loader found no NVIDIA adapter, and no nvidia_icd.json was found" >>"$OUT/driver-setup.txt"
    fi
  fi
  step adapter 60 0 "adapter.json" bash -c '"$1" gpu-info --json >"$2/adapter.json" && "$1" gpu-info' _ "$BIN" "$OUT"
  if [ -s "$OUT/adapter.json" ] && [ "$LAVAPIPE" = 0 ] && grep -q '"software": true' "$OUT/adapter.json"; then
    record hardware-gpu failed 0 "adapter.json" "the selected adapter is a software one: the GPU rows below are not a hardware GPU's"
  elif [ -s "$OUT/adapter.json" ] && ! grep -q '"selected": null' "$OUT/adapter.json"; then
    record hardware-gpu "$([ "$LAVAPIPE" = 1 ] && echo n/a || echo ok)" 0 "adapter.json" \
      "$(grep -m1 '"describe"' "$OUT/adapter.json" | sed 's/^ *"describe": //; s/,$//; s/"//g')"
  fi
fi

# ---- tests ----
if [ "$TESTS" = 1 ] && command -v cargo >/dev/null 2>&1; then
  if [ "$TINY" = 1 ]; then
    step tests-engines 120 40 "" cargo test "${PROFILE_FLAG[@]}" --test gpu_vs_cpu --test cellmap_engines \
      -- gpu_edge gpu_splits engine_verify
    step tests-device-loss 120 30 "" cargo test "${PROFILE_FLAG[@]}" --test device_loss
  else
    step tests-engines 200 130 "" cargo test "${PROFILE_FLAG[@]}" --test gpu_vs_cpu --test cellmap_engines --test device_loss
  fi
  step tests-cli 90 "$([ "$TINY" = 1 ] && echo 20 || echo 120)" "" cargo test "${PROFILE_FLAG[@]}" --test cli --test cli_cellmap -- gpu
elif [ "$TESTS" = 1 ]; then
  record tests failed 0 "" "no cargo on this machine"
fi

# ---- benchmarks ----
# bench NAME CAP RESERVE ARGS...: annomask bench ARGS, table (and its notes) in NAME.txt, JSON
# in NAME.json.
bench() {
  local name=$1 cap=$2 reserve=$3
  shift 3
  step "$name" "$cap" "$reserve" "$name.json" "$BIN" bench --no-reference --json-out "$OUT/$name.json" "$@"
}
if [ -x "$BIN" ]; then
  BENCH_DIR=${DEVICE_CHECK_DIR:-${TMPDIR:-/tmp}}
  if [ "$TINY" = 1 ]; then
    # kernels: engine auto = the CPU and the GPU rows, interleaved in one run
    bench bench-kernel-64-c8 30 40 --engine auto --size 64 --channels 8 --repeat 2
    bench bench-kernel-64-c64 30 35 --engine auto --size 64 --channels 64 --repeat 2
    bench bench-kernel-96-c8 30 30 --engine auto --size 96 --channels 8 --repeat 2
    bench bench-pipeline-cpu 30 20 --pipeline --engine cpu --size 128 --repeat 1 --dir "$BENCH_DIR"
    bench bench-pipeline-gpu 30 10 --pipeline --engine gpu --size 128 --repeat 1 --dir "$BENCH_DIR"
    bench bench-feeder-cpu 30 5 --feeder --engine cpu --size 64 --roi 32 --batches 4 --repeat 1
    bench bench-feeder-gpu 30 0 --feeder --engine gpu --size 64 --roi 32 --batches 4 --repeat 1
  else
    # In order of priority: the most expensive (512^3 x 64 channels: ~36 GiB of host buffers)
    # last. RESERVE: about half of what the benchmarks after it take on an H200, so a slow
    # build or slow tests cut the last ones rather than the first.
    bench bench-kernel-256-c8 45 120 --engine auto --size 256 --channels 8 --repeat 5
    bench bench-kernel-256-c64 60 110 --engine auto --size 256 --channels 64 --repeat 5
    bench bench-kernel-512-c8 60 95 --engine auto --size 512 --channels 8 --repeat 3
    bench bench-pipeline-cpu 60 70 --pipeline --engine cpu --size 512 --channels 8 --repeat 3 --dir "$BENCH_DIR"
    bench bench-pipeline-gpu 60 45 --pipeline --engine gpu --size 512 --channels 8 --repeat 3 --dir "$BENCH_DIR"
    bench bench-feeder-cpu 25 40 --feeder --engine cpu --size 256 --roi 128 --batches 16 --repeat 3
    bench bench-feeder-gpu 25 35 --feeder --engine gpu --size 256 --roi 128 --batches 16 --repeat 3
    bench bench-kernel-512-c64 120 0 --engine auto --size 512 --channels 64 --repeat 3
  fi
fi

# ---- summary ----
TOTAL=$SECONDS
OK=true
{
  printf '{\n  "script": "scripts/device-check.sh",\n'
  printf '  "started": %s,\n  "seconds": %s,\n  "budget_seconds": %s,\n' "$(json_str "$STARTED")" "$TOTAL" "$BUDGET"
  printf '  "mode": {"lavapipe": %s, "tiny": %s, "profile": %s},\n' \
    "$([ "$LAVAPIPE" = 1 ] && echo true || echo false)" "$([ "$TINY" = 1 ] && echo true || echo false)" "$(json_str "$PROFILE")"
  printf '  "machine": {'
  first=1
  while IFS= read -r line; do
    key=${line%%:*}
    value=${line#*: }
    [ "$first" = 1 ] || printf ', '
    first=0
    printf '%s: %s' "$(json_str "$key")" "$(json_str "$value")"
  done <"$OUT/machine.txt"
  printf '},\n'
  printf '  "environment": {"WGPU_BACKEND": %s, "VK_DRIVER_FILES": %s},\n' \
    "$(json_str "${WGPU_BACKEND:-}")" "$(json_str "${VK_DRIVER_FILES:-}")"
  printf '  "steps": [\n'
  first=1
  while IFS=$SEP read -r name status took files note; do
    case "$status" in ok | skipped | n/a) ;; *) OK=false ;; esac
    [ "$first" = 1 ] || printf ',\n'
    first=0
    printf '    {"name": %s, "status": %s, "seconds": %s, "files": [' "$(json_str "$name")" "$(json_str "$status")" "$took"
    sep=""
    for f in $files; do
      printf '%s%s' "$sep" "$(json_str "$f")"
      sep=", "
    done
    printf '], "note": %s}' "$(json_str "$note")"
  done <"$OUT/steps.tsv"
  printf '\n  ],\n  "tests": [\n'
  first=1
  for f in "$OUT"/tests-*.txt; do
    [ -f "$f" ] || continue
    # "Running tests/gpu_vs_cpu.rs (...)" then "test result: ok. 5 passed; 0 failed; 1 ignored; ..."
    awk '/^ *Running /{suite=$2} /^test result:/{
          gsub(/[.;]/, " "); p=f=i=x=0
          for (k = 1; k <= NF; k++) {
            if ($k == "passed") p = $(k-1); if ($k == "failed") f = $(k-1)
            if ($k == "ignored") i = $(k-1); if ($k == "filtered") x = $(k-1)
          }
          print suite "\t" $3 "\t" p "\t" f "\t" i "\t" x }' "$f"
  done | while IFS=$'\t' read -r suite result passed failed ignored filtered; do
    [ "$first" = 1 ] || printf ',\n'
    first=0
    printf '    {"suite": %s, "result": %s, "passed": %s, "failed": %s, "ignored": %s, "filtered_out": %s}' \
      "$(json_str "$suite")" "$(json_str "$result")" "$passed" "$failed" "$ignored" "$filtered"
  done
  printf '\n  ],\n'
  printf '  "ok": %s\n}\n' "$OK"
} >"$OUT/summary.json"

{
  echo "device-check: $([ "$OK" = true ] && echo 'all steps passed' || echo 'SOME STEPS FAILED') in ${TOTAL}s (budget ${BUDGET}s); mode: $([ "$LAVAPIPE" = 1 ] && echo lavapipe || echo hardware)$([ "$TINY" = 1 ] && echo ', tiny'), $PROFILE build"
  cat "$OUT/machine.txt"
  echo
  printf '%-22s %-9s %6s  %s\n' step status seconds note
  while IFS=$SEP read -r name status took files note; do
    printf '%-22s %-9s %6s  %s\n' "$name" "$status" "$took" "$note"
  done <"$OUT/steps.tsv"
  echo
  grep -h '^test result:' "$OUT"/tests-*.txt 2>/dev/null | sed 's/^/tests: /'
  if [ -f "$OUT/adapter.txt" ]; then
    echo
    grep -E '^(selected|trial|--engine auto)' "$OUT/adapter.txt"
  fi
  for f in "$OUT"/bench-*.txt; do
    [ -f "$f" ] || continue
    echo
    echo "== $(basename "$f" .txt)"
    grep -v '^bench: ' "$f"
  done
} >"$OUT/summary.txt"
[ "$OK" = true ] && grep -q '"ok": true' "$OUT/summary.json"
status=$?
log "done in ${TOTAL}s: $([ "$status" = 0 ] && echo ok || echo 'some steps failed'); see $OUT/summary.txt"
exit "$status"
