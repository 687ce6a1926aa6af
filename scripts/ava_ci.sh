#!/usr/bin/env bash
# Runs ava with TAP and ends with the plain line CI understands: "N passed, N failed, N skipped".
# Exit code = ava's, or 1 when ava ran no test. A crash (non-zero exit without failing TAP lines: a file that did not
# load, a runner that died) and a run without any test count as one failure each, with a message saying so.
# Extra arguments go to ava (e.g. a file list).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# On PostgreSQL and MariaDB (PUSHGATE_TEST_DB), a whole run takes only the test files that reach a database: a file
# that imports none of the helpers that build one (a world, a CLI world, a server, a database URL) tests code whose
# result does not depend on the database, so it runs once, in the SQLite run. tests/policies/every_action.test.ts
# (two worlds for each of ~130 policy actions: it proves that no action is accepted and ignored, a property of the
# policy engine and the token types) runs on SQLite only as well. Both keep .ci/run's three runs within its budget.
if [ "$#" -eq 0 ] && [ "${PUSHGATE_TEST_DB:-sqlite}" != "sqlite" ]; then
  db_helpers='world\(|createWorld|pushWorld|cliWorld|cli_world|test_app|databases\.ts|freshDatabaseUrl|createStore|buildDeps|startServer|nodes\.ts|TEST_DB'
  set --
  while IFS= read -r f; do
    [ "$f" = "tests/policies/every_action.test.ts" ] && continue
    grep -qE "$db_helpers" "$f" && set -- "$@" "$f"
  done < <(find tests -name '*.test.ts' | sort)
  echo "# ${PUSHGATE_TEST_DB}: $# test files that reach a database (the others run in the SQLite run)"
fi
# The run itself: the suite compiled once (scripts/build_tests.js: a copy of the checkout in .ci-build/ with every .ts
# compiled next to it, run by plain node) instead of tsx in each of ava's ~100 file processes (~1.3 s CPU less per
# file). .ci/run builds it once for its three runs (PUSHGATE_TESTS_BUILT=1); test files may be named as the .ts
# sources. PUSHGATE_TEST_TSX=1 runs the sources through tsx in the checkout instead, as `npx ava <file>` does.
tap="$(mktemp)"
if [ "${PUSHGATE_TEST_TSX:-}" = 1 ]; then
  (cd "$root" && npx ava --tap "$@") | tee "$tap"
  rc=${PIPESTATUS[0]}
else
  if [ "${PUSHGATE_TESTS_BUILT:-}" != 1 ]; then
    node "$root/scripts/build_tests.js" || { echo "the test build (scripts/build_tests.js) failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
  fi
  args=()
  for a in "$@"; do
    case "$a" in
      -*) args+=("$a") ;;
      *.ts) a="${a#"$root"/}"; a="${a#./}"; args+=("${a%.ts}.js") ;;
      *) args+=("$a") ;;
    esac
  done
  (cd "$root/.ci-build" && node "$root/node_modules/ava/entrypoints/cli.mjs" --tap "${args[@]}") | tee "$tap"
  rc=${PIPESTATUS[0]}
fi
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
