#!/usr/bin/env bash
# cmake --install puts the command in PREFIX/bin, where PATH finds it and it runs from anywhere.
# usage: install.sh CMAKE BUILD_DIR WORKDIR
set -uo pipefail
cmake=$1; build=$2; dir=$3
rm -rf "$dir"; mkdir -p "$dir"
"$cmake" --install "$build" --prefix "$dir/prefix" >"$dir/install.log" 2>&1 || { cat "$dir/install.log"; exit 1; }
[ -x "$dir/prefix/bin/shardrec" ] || { echo "FAIL: no $dir/prefix/bin/shardrec"; exit 1; }
[ -f "$dir/prefix/share/doc/shardrec/LICENSE" ] || { echo "FAIL: no licence under share/doc/shardrec"; exit 1; }
cd "$dir" || exit 1
found=$(PATH="$dir/prefix/bin:$PATH" command -v shardrec)
[ "$found" = "$dir/prefix/bin/shardrec" ] || { echo "FAIL: PATH finds '$found'"; exit 1; }
out=$(PATH="$dir/prefix/bin:$PATH" shardrec --version) && grep -q '^shardrec [0-9]' <<<"$out" \
  || { echo "FAIL: the installed command: $out"; exit 1; }
PATH="$dir/prefix/bin:$PATH" shardrec synth --users 50 --items 20 --interactions 400 --out d.h5 >/dev/null \
  || { echo "FAIL: the installed command cannot run synth"; exit 1; }
echo "ok   installed: $found ($out)"
