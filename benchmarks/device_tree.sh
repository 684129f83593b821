#!/usr/bin/env bash
# The device tool sends the tracked tree (plus untracked files git does not ignore, plus carried paths) and
# refuses more than 64 MiB. The tracked tree is ~79 MB since "fast" ships (default_model 46 MB + fast_model
# 29 MB), so before a device call take the models a GPU script does not read out of what travels, and put
# them back after. Nothing is deleted: `slim` untracks the folders in the index only (the files stay on disk)
# and ignores them in .git/info/exclude; `restore` undoes both. Run from the repository root:
#   bash benchmarks/device_tree.sh size                 # bytes that would travel now (+ any paths you carry)
#   bash benchmarks/device_tree.sh slim [FOLDER ...]    # default: src/crossrank/fast_model
#   bash benchmarks/device_tree.sh restore [FOLDER ...]
# Never commit while slim: the commit would delete the folders from git.
set -euo pipefail
cmd=${1:-size}; shift || true
folders=("$@"); [ ${#folders[@]} -gt 0 ] || folders=(src/crossrank/fast_model)
exclude=.git/info/exclude
travel_bytes() {
  { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s 2>/dev/null \
    | awk '{s+=$1} END {print s+0}'
}
case "$cmd" in
  size)
    echo "$(travel_bytes) bytes travel (limit 67108864), before carried paths";;
  slim)
    for f in "${folders[@]}"; do
      git rm -r -q --cached -- "$f"
      grep -qsxF "/$f/" "$exclude" || echo "/$f/" >> "$exclude"
    done
    echo "slim: $(travel_bytes) bytes travel (limit 67108864), before carried paths";;
  restore)
    for f in "${folders[@]}"; do
      git reset -q -- "$f"
      grep -svxF "/$f/" "$exclude" > "$exclude.tmp" || true
      mv "$exclude.tmp" "$exclude"
    done
    git status --short -- "${folders[@]}"
    echo "restored: $(travel_bytes) bytes travel";;
  *) echo "usage: $0 size|slim|restore [FOLDER ...]" >&2; exit 2;;
esac
