#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/check-headers.sh checks that every source file starts with the licence
# header CONTRIBUTING.md describes ("Licence headers"):
#
#   // Copyright The tierscaler Authors.        (# in scripts, Makefile,
#   // SPDX-License-Identifier: Apache-2.0       Dockerfile and workflows)
#
# after a #! line where there is one. The files are the Go files, shell
# scripts, the Makefile, the Dockerfile, .ci/ and the GitHub workflows, tracked
# or new (not ignored).
#
# Usage: hack/check-headers.sh         list the files without it; exit 1 if any
#        hack/check-headers.sh --fix   add it where it is missing
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

fix=false
case "${1:-}" in
  "") ;;
  --fix) fix=true ;;
  *) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac

copyright="Copyright The tierscaler Authors."
spdx="SPDX-License-Identifier: Apache-2.0"

# comment_prefix FILE: the line-comment marker of FILE's language.
comment_prefix() {
  case "$1" in
    *.go) echo "//" ;;
    *) echo "#" ;;
  esac
}

# has_header FILE: the header is on the first two lines, or on lines 2-3
# after a #! line.
has_header() {
  local f=$1 c
  c=$(comment_prefix "$f")
  local first
  first=$(head -n 1 "$f")
  local start=1
  [[ "$first" == '#!'* ]] && start=2
  [[ "$(sed -n "${start}p" "$f")" == "$c $copyright" && "$(sed -n "$((start + 1))p" "$f")" == "$c $spdx" ]]
}

# add_header FILE: inserts the header (and a blank line, so that in Go it
# stays out of the package documentation) at the top, after a #! line.
add_header() {
  local f=$1 c tmp
  c=$(comment_prefix "$f")
  tmp=$(mktemp)
  awk -v h1="$c $copyright" -v h2="$c $spdx" '
    NR == 1 && /^#!/ { print; print h1; print h2; print ""; next }
    NR == 1 { print h1; print h2; print "" }
    { print }
  ' "$f" > "$tmp"
  cat "$tmp" > "$f" # keeps the file's mode
  rm -f "$tmp"
}

mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
  '*.go' '*.sh' 'Makefile' 'Dockerfile' '.ci/*' '.github/workflows/*.yaml' '.github/workflows/*.yml' | sort -u)

missing=()
for f in "${files[@]}"; do
  [[ -f "$f" ]] || continue # deleted in the work tree
  has_header "$f" || missing+=("$f")
done

if (( ${#missing[@]} == 0 )); then
  exit 0
fi
if $fix; then
  for f in "${missing[@]}"; do
    add_header "$f"
    echo "added the licence header to $f"
  done
  exit 0
fi
echo "These files lack the licence header (CONTRIBUTING.md, \"Licence headers\"):" >&2
printf '  %s\n' "${missing[@]}" >&2
echo "Add it with: hack/check-headers.sh --fix" >&2
exit 1
