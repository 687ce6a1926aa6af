#!/usr/bin/env bash
# Measures the peak number of database connections a command opens (e.g. the test suite):
#   scripts/db_peak.sh 5432 -- env PUSHGATE_TEST_DB=postgres npm test
#   scripts/db_peak.sh 3306 -- env PUSHGATE_TEST_DB=mysql npm test
# Every 200 ms it counts the TCP connections to 127.0.0.1:PORT held by processes whose working directory is this
# repository (ava's workers and the servers the tests spawn), so other users of the same database server are not
# counted. Prints "peak connections to :PORT: N" at the end; exit code = the command's.
set -uo pipefail
port="$1"; shift
[ "${1:-}" = "--" ] && shift
root="$(cd "$(dirname "$0")/.." && pwd -P)"
peak_file="$(mktemp)"
echo 0 >"$peak_file"
(
  peak=0
  while :; do
    n=0
    while read -r pid; do
      [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$root" ] && n=$((n + 1))
    done < <(ss -tnpH "dst 127.0.0.1:$port" 2>/dev/null | grep -oE 'pid=[0-9]+' | cut -d= -f2)
    if [ "$n" -gt "$peak" ]; then peak=$n; echo "$peak" >"$peak_file"; fi
    sleep 0.2
  done
) &
monitor=$!
"$@"
rc=$?
kill "$monitor" 2>/dev/null
wait "$monitor" 2>/dev/null
echo "peak connections to :$port: $(cat "$peak_file")"
rm -f "$peak_file"
exit "$rc"
