#!/usr/bin/env bash
# The layering, checked on the sources: base <- kernels <- dist <- io <- core <- launch. A file may
# include its own folder and the folders below it (and the generated config header); nothing
# includes launch/ but launch/ and the tests of the command line. Prints every include that crosses a forbidden arrow.
# usage: layering.sh SOURCE_DIR
set -uo pipefail
order=(base kernels dist io core launch)
rank_of() { local i; for i in "${!order[@]}"; do [ "${order[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }
# check_tree DIR: prints the forbidden includes under DIR; sets bad and checked.
check_tree() {
  pushd "$1" >/dev/null || exit 2
  bad=0; checked=0
  for dir in "${order[@]}" tests bench; do
    mine=$(rank_of "$dir")
    # bench may use every library layer; tests also test the command's option table.
    [ "$dir" = bench ] && mine=$(rank_of core)
    [ "$dir" = tests ] && mine=$(rank_of launch)
    while IFS= read -r f; do
      checked=$((checked + 1))
      while IFS=: read -r line inc; do
        top=${inc%%/*}
        [ "$top" = "$inc" ] && continue  # not rooted at a folder (shardrec_config.h)
        theirs=$(rank_of "$top")
        [ "$theirs" -lt 0 ] && continue  # not a project folder
        if [ "$theirs" -gt "$mine" ]; then
          echo "$f:$line: includes \"$inc\": $dir/ may not depend on $top/"; bad=$((bad + 1))
        fi
      done < <(grep -no '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*"' "$f" | sed 's/:.*"\(.*\)"/:\1/')
    done < <(find "$dir" -type f \( -name '*.h' -o -name '*.cc' -o -name '*.cu' -o -name '*.cuh' \) 2>/dev/null | sort)
  done
  popd >/dev/null || exit 2
}
# First, on a small tree with one forbidden arrow, so the check itself is known to bite.
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
mkdir -p "$t/io" "$t/core"; printf '#include "core/trainer.h"\n#include "io/x.h"\n' > "$t/io/x.h"; : > "$t/core/trainer.h"
self=$(check_tree "$t")
if [ "$(grep -c 'may not depend' <<<"$self")" -ne 1 ] || ! grep -q 'io/x.h:1: includes "core/trainer.h"' <<<"$self"; then
  echo "layering: the check missed io/ -> core/ in its self-test ($self)"; exit 2
fi
check_tree "$1"
[ "$checked" -gt 50 ] || { echo "layering: only $checked sources found under $1"; exit 2; }
echo "layering: $checked sources, $bad forbidden includes"
[ "$bad" -eq 0 ]
