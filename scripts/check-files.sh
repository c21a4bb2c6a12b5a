#!/usr/bin/env bash
# Fails when a file tracked by git, outside a testdata/ directory, is larger
# than 1 MiB. Build outputs (a 37 MB meshdns binary was once committed) and
# data dumps do not belong in the repository; .gitignore lists every
# command's build output. Sizes are those of the blobs in git's index, so an
# edited or deleted work-tree file does not hide a large committed one.
# It also fails when go build's output of a command, cmd/<name>/<name>, is
# not ignored by .gitignore.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

limit=$((1024 * 1024))
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	echo "check-files.sh: not a git work tree, so there are no tracked files to check" >&2
	# CI always runs in a checkout: not being in one there is an error.
	[[ ${CI:-} == true ]] && exit 1
	exit 0
fi

status=0
# git ls-files -s: "<mode> <blob> <stage>\t<path>"; cat-file prints each
# blob's size with the path carried along in %(rest).
while read -r size path; do
	case "/$path" in
	*/testdata/*) continue ;;
	esac
	if ((size > limit)); then
		echo "check-files.sh: $path is $size bytes, over the 1 MiB limit for tracked files outside testdata/; remove it (git rm --cached) or, if a test needs it, move it under testdata/" >&2
		status=1
	fi
done < <(git ls-files -s | awk -F '\t' '{split($1, a, " "); print a[2] " " $2}' |
	git cat-file --batch-check='%(objectsize) %(rest)')
# `go build` in a command's directory writes cmd/<name>/<name>; every
# command's output must be ignored so it cannot be committed by accident.
for dir in cmd/*/; do
	name=$(basename "$dir")
	if ! git check-ignore -q --no-index "cmd/$name/$name"; then
		echo "check-files.sh: cmd/$name/$name (go build's output) is not in .gitignore; add it" >&2
		status=1
	fi
done
exit "$status"
