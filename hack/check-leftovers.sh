#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/check-leftovers.sh reports processes that hack/testenv environments
# left behind: every process whose command line holds "tierscaler-testenv-"
# (the prefix of the environments' temporary directories) and whose parent is
# not a running Go test binary (whose environment it then still is).
#
# Usage: hack/check-leftovers.sh          print them; exit 1 if there are any
#        hack/check-leftovers.sh --kill   also kill them, by process group
#
# Directories kept by failed runs (for their logs) are listed, not counted.
set -euo pipefail

pattern=tierscaler-testenv-
kill=false
case "${1:-}" in
  "") ;;
  --kill) kill=true ;;
  *) echo "usage: $0 [--kill]" >&2; exit 2 ;;
esac

leftovers=()
in_use=()
while read -r pid; do
  [[ -n "$pid" ]] || continue
  ppid=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ') || continue # gone meanwhile
  [[ -n "$ppid" ]] || continue
  parent=$(ps -o args= -p "$ppid" 2>/dev/null | awk '{print $1}') || true
  if [[ "$parent" == *.test ]]; then
    in_use+=("$pid")
  else
    leftovers+=("$pid")
  fi
done < <(pgrep -f -- "$pattern" || true)

if (( ${#in_use[@]} > 0 )); then
  echo "In use by running test binaries (not leftovers):"
  ps -o pid=,ppid=,etime=,args= -p "$(IFS=,; echo "${in_use[*]}")" | cut -c1-200 | sed 's/^/  /'
fi

tmp=${TMPDIR:-/tmp}
mapfile -t kept < <(find "$tmp" -maxdepth 1 -type d -name "${pattern}*" 2>/dev/null | sort)
if (( ${#kept[@]} > 0 )); then
  echo "Directories of earlier environments (kept for their logs; remove them with rm -rf):"
  printf '  %s\n' "${kept[@]}"
fi

if (( ${#leftovers[@]} == 0 )); then
  echo "No leftover testenv processes."
  exit 0
fi

echo "Leftover testenv processes:" >&2
ps -o pid=,ppid=,etime=,args= -p "$(IFS=,; echo "${leftovers[*]}")" | cut -c1-200 | sed 's/^/  /' >&2
if $kill; then
  for pid in "${leftovers[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  echo "Killed them." >&2
else
  echo "Stop them with: $0 --kill" >&2
fi
exit 1
