#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/fuzz.sh runs every fuzz target of the repository (func FuzzXxx in a
# _test.go file without build constraints) for a short, fixed time each, one
# after the other, and fails if any target finds a failing input.
#
# Usage: hack/fuzz.sh              every target, FUZZTIME each
#        hack/fuzz.sh FuzzParse    only the targets named
#
# Environment: FUZZTIME, the time per target (default 15s; any -fuzztime
# value: 30s, 1m, or 5000x for a number of runs).
#
# It commits nothing. As go test does, an input that fails is written to the
# target's testdata/fuzz/<FuzzName>/ directory, where it becomes a seed that
# every plain `go test` runs: fix the code, and commit the input with the
# fix. The new inputs are listed at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzztime=${FUZZTIME:-15s}
only=("$@")

# Targets as "<package dir> <FuzzName>", from the test files without build
# constraints (a fuzz target behind a build tag would need that tag).
targets=()
while IFS= read -r file; do
  if grep -q '^//go:build' "$file"; then
    echo "[fuzz] skipping $file: it has build constraints" >&2
    continue
  fi
  dir=$(dirname "$file")
  while IFS= read -r name; do
    targets+=("$dir $name")
  done < <(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*\*testing\.F\).*/\1/p' "$file")
done < <(git ls-files --cached --others --exclude-standard -- '*_test.go' | sort)

if ((${#targets[@]} == 0)); then
  echo "[fuzz] no fuzz targets found" >&2
  exit 1
fi

before=$(git status --porcelain --untracked-files=all -- '*testdata/fuzz/*' | sort)
failed=()
ran=0
for t in "${targets[@]}"; do
  read -r dir name <<<"$t"
  if ((${#only[@]} > 0)); then
    match=0
    for o in "${only[@]}"; do [[ "$o" == "$name" ]] && match=1; done
    ((match)) || continue
  fi
  ran=$((ran + 1))
  echo "[fuzz] $name in ./$dir for $fuzztime" >&2
  start=$(date +%s)
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"; then
    failed+=("$name (./$dir)")
  fi
  echo "[fuzz] $name: $(($(date +%s) - start))s" >&2
done

if ((ran == 0)); then
  echo "[fuzz] no fuzz target is named ${only[*]}" >&2
  exit 1
fi
after=$(git status --porcelain --untracked-files=all -- '*testdata/fuzz/*' | sort)
new=$(comm -13 <(echo "$before") <(echo "$after") | sed -E 's/^...//')
if ((${#failed[@]} > 0)); then
  echo "[fuzz] FAILED: ${failed[*]}" >&2
  if [[ -n "$new" ]]; then
    echo "[fuzz] failing inputs written (fix the code, then commit them as seeds):" >&2
    echo "$new" | sed 's/^/[fuzz]   /' >&2
  fi
  exit 1
fi
echo "[fuzz] $ran targets, $fuzztime each: no failing input" >&2
