#!/usr/bin/env bash
# Per-file cost of the test suite: runs each test file ALONE (one ava process, one file at a time) and prints one line
# per file: wall seconds, CPU seconds (user+sys of ava and its worker), exit code, file — sorted by wall, slowest
# first. The CPU column is the steadier one on a shared machine (wall grows with the load average).
# Usage: scripts/test_times.sh [out.tsv] [files...]   (default: every tests/**/*.test.ts; PUSHGATE_TEST_DB applies)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/pushgate-test-times.tsv}"; shift || true
files=("$@")
[ ${#files[@]} -gt 0 ] || mapfile -t files < <(find tests -name '*.test.ts' | sort)
: >"$out"
for f in "${files[@]}"; do
  log="$(mktemp)"
  /usr/bin/time -f '%e %U %S' -o "$log.time" npx ava "$f" >"$log" 2>&1
  rc=$?
  read -r wall user sys <"$log.time"
  printf '%s\t%.2f\t%s\t%s\n' "$wall" "$(echo "$user + $sys" | bc)" "$rc" "$f" | tee -a "$out"
  [ "$rc" -eq 0 ] || tail -n 30 "$log" >"$out.$(basename "$f").log"
  rm -f "$log" "$log.time"
done
echo "== slowest (wall s, cpu s, rc, file); load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
sort -rn "$out" | head -n 25
awk -F'\t' '{w+=$1; c+=$2} END {printf "sum: %.1f s wall, %.1f s cpu over %d files\n", w, c, NR}' "$out"
