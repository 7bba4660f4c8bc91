#!/usr/bin/env bash
# Fuzzing colo's parsers with libFuzzer (cargo-fuzz on the nightly toolchain). Not part of the
# test command (runs are minutes per target); what it finds is: crashes land in
# fuzz/regressions/<target>/, which the test command replays (tests/fuzzing/tests/replay.rs).
#
#   scripts/fuzz.sh list                    the targets
#   scripts/fuzz.sh seed                    rewrite fuzz/seeds/ (committed) from the test data
#   scripts/fuzz.sh run [SECS] [TARGET...]  each target (default: all) for SECS seconds (600)
#
# A run builds the targets once (--dev: overflow checks on; no sanitizer: colo has no unsafe
# code, a panic, a hang over 30 s or more than 2.5 GiB of memory is the finding), grows a corpus
# per target in $COLO_CACHE/fuzz/corpus/ (kept between runs), and appends one line per target to
# $COLO_CACHE/fuzz/runs.log: date, target, seconds, executions, coverage, findings.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$COLO_REPO"

FUZZ_HOME="$COLO_CACHE/fuzz"
TARGETS=(adql dali_params uws vo_requests votable_upload fits config_toml graphql lab_proxy)
BUILD=(--dev -s none --target-dir "$COLO_CACHE/fuzz-target")

need_tools() {
  if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
  fi
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
}

run_one() {
  local target=$1 secs=$2
  local corpus="$FUZZ_HOME/corpus/$target" artifacts="$FUZZ_HOME/artifacts/$target"
  local log="$FUZZ_HOME/logs/$target.log"
  mkdir -p "$corpus" "$artifacts" "$FUZZ_HOME/logs"
  local status=0
  (cd fuzz && cargo +nightly fuzz run "${BUILD[@]}" "$target" "$corpus" "seeds/$target" -- \
      -max_total_time="$secs" -timeout=30 -rss_limit_mb=2560 -max_len=262144 \
      -artifact_prefix="$artifacts/" -print_final_stats=1) >"$log" 2>&1 || status=$?
  local execs cov found
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  found=0
  for artifact in $(find "$artifacts" -type f -newer "$log.start" 2>/dev/null); do
    mkdir -p "fuzz/regressions/$target"
    cp "$artifact" "fuzz/regressions/$target/"
    found=$((found + 1))
  done
  printf '%s\t%s\t%ss\t%s execs\tcov %s\t%s found (exit %s)\n' "$(date -u +%FT%TZ)" "$target" \
    "$secs" "${execs:-?}" "${cov:-?}" "$found" "$status" | tee -a "$FUZZ_HOME/runs.log"
  if [ "$found" -gt 0 ]; then
    echo "  copied into fuzz/regressions/$target/ (see $log)"
  fi
}

case "${1:-}" in
  list) printf '%s\n' "${TARGETS[@]}" ;;
  seed) "$COLO_VENV/bin/python" scripts/fuzz_seeds.py ;;
  run)
    shift
    secs=${1:-600}
    [ $# -gt 0 ] && shift
    targets=("$@")
    [ ${#targets[@]} -eq 0 ] && targets=("${TARGETS[@]}")
    need_tools
    mkdir -p "$FUZZ_HOME"
    (cd fuzz && cargo +nightly fuzz build "${BUILD[@]}")
    for target in "${targets[@]}"; do
      mkdir -p "$FUZZ_HOME/logs"
      touch "$FUZZ_HOME/logs/$target.log.start"
      run_one "$target" "$secs"
    done
    ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
