#!/usr/bin/env bash
# Runs ava with TAP and ends with the plain line CI understands: "N passed, N failed, N skipped".
# Exit code = ava's. Extra arguments go to ava (e.g. a file list).
set -uo pipefail
tap="$(mktemp)"
npx ava --tap "$@" | tee "$tap"
rc=${PIPESTATUS[0]}
skipped=$(grep -cE '^ok [0-9]+ .*# SKIP' "$tap")
ok=$(grep -cE '^ok [0-9]+' "$tap")
todo=$(grep -cE '^not ok [0-9]+ .*# TODO' "$tap")
notok=$(grep -cE '^not ok [0-9]+' "$tap")
passed=$((ok - skipped)); failed=$((notok - todo))
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi   # ava crashed before emitting TAP
rm -f "$tap"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
