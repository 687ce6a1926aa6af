#!/usr/bin/env bash
# Runs ava with TAP and ends with the plain line CI understands: "N passed, N failed, N skipped".
# Exit code = ava's, or 1 when ava ran no test. A crash (non-zero exit without failing TAP lines: a file that did not
# load, a runner that died) and a run without any test count as one failure each, with a message saying so.
# Extra arguments go to ava (e.g. a file list).
set -uo pipefail
tap="$(mktemp)"
npx ava --tap "$@" | tee "$tap"
rc=${PIPESTATUS[0]}
skipped=$(grep -cE '^ok [0-9]+ .*# SKIP' "$tap")
ok=$(grep -cE '^ok [0-9]+' "$tap")
todo=$(grep -cE '^not ok [0-9]+ .*# TODO' "$tap")
notok=$(grep -cE '^not ok [0-9]+' "$tap")
rm -f "$tap"
passed=$((ok - skipped)); failed=$((notok - todo))
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "ava exited with $rc without reporting a failed test (a crash, or a file that did not load): counted as a failure"
  failed=1
fi
if [ $((ok + notok)) -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "ava ran no test: counted as a failure"
  failed=1; rc=1
fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
