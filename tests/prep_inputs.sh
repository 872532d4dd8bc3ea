#!/usr/bin/env bash
# prep's inputs through the command line: compressed logs, format detection and mismatches,
# presplit roles, attributes rewritten by h5py, provenance, progress and --json. Every error names
# the file (and line or option), exits non-zero and leaves no output behind.
# usage: prep_inputs.sh SHARDREC WORKDIR
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
fail() { echo "FAIL $*"; fails=$((fails+1)); }
# expect_error "what" "expected message part" command...
expect_error() {
  local what=$1 want=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then fail "$what: exit 0"; return; fi
  if ! grep -qF -- "$want" <<<"$out"; then fail "$what: message lacks '$want':"; echo "$out" | head -5; return; fi
  echo "ok   $what (exit $rc): $(grep -m1 error <<<"$out")"
}
no_file() { if [ -e "$1" ] || ls "$1".tmp* >/dev/null 2>&1; then fail "output left: $1"; fi; }
# The data of two datasets (every dataset's bytes, not the attributes) is the same.
same_data() {
  python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
def collect(f):
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out
x, y = collect(a), collect(b)
assert x.keys() == y.keys(), (x.keys(), y.keys())
for k in x:
    assert np.array_equal(x[k], y[k]), k
PY
}

# A u.data-like log: 30 users x 8 items, rating, timestamp.
python3 -c "
for u in range(1, 31):
    for k in range(8):
        i = (u * 7 + k * 3) % 40 + 1
        print(f'{u}\t{i}\t{1 + (u + k) % 5}\t{1000 + u * 10 + k}')
" > u.data

# ---- compressed inputs -------------------------------------------------------------------------
"$bin" prep --format ml-udata --input u.data --out plain.h5 >/dev/null || fail "plain prep"
gzip -c u.data > u.data.gz
if "$bin" prep --format ml-udata --input u.data.gz --out gz.h5 >/dev/null && same_data plain.h5 gz.h5; then
  echo "ok   .gz input gives the same data"; else fail ".gz input"; fi
# Two gzip members one after the other (cat a.gz b.gz) read as one file.
head -n 100 u.data | gzip -c > two.gz; tail -n +101 u.data | gzip -c >> two.gz
if "$bin" prep --format ml-udata --input two.gz --out two.h5 >/dev/null && same_data plain.h5 two.h5; then
  echo "ok   .gz with two members"; else fail ".gz with two members"; fi
head -c 300 u.data.gz > cut.gz
expect_error "truncated .gz" "cut.gz: truncated gzip data" "$bin" prep --format ml-udata --input cut.gz --out cut.h5
no_file cut.h5
cp u.data.gz hidden.data
expect_error "gzip under a plain name" "hidden.data: the file is gzip-compressed but its name does not end in .gz" \
  "$bin" prep --input hidden.data --out hidden.h5
no_file hidden.h5
printf 'not gzip at all\n' > bad.gz
expect_error "corrupt .gz" "bad.gz: corrupt gzip data" "$bin" prep --format ml-udata --input bad.gz --out bad.h5
no_file bad.h5
if command -v zstd >/dev/null; then
  zstd -q -c u.data > u.data.zst
  if "$bin" prep --format ml-udata --input u.data.zst --out zst.h5 >/dev/null && same_data plain.h5 zst.h5; then
    echo "ok   .zst input gives the same data"; else fail ".zst input"; fi
  cp u.data.zst hidden.csv
  expect_error "zstd under a plain name" "hidden.csv: the file is zstd-compressed but its name does not end in .zst" \
    "$bin" prep --format csv --input hidden.csv --out hidden.h5
  head -c 200 u.data.zst > cut.zst
  expect_error "truncated .zst" "cut.zst: truncated zstd data" "$bin" prep --format ml-udata --input cut.zst --out cutz.h5
  no_file cutz.h5
else
  echo "skip .zst (no zstd command to make the fixture)"
fi

# ---- RFC 4180 csv through the command line -------------------------------------------------------
printf 'user,title,item,rating\n1,"Title 10, The",10,2\n2,"A ""quoted"" one",11,3\n3,"two\nlines",12,4\n' > movies.csv
out=$("$bin" prep --format csv --header true --item-col item --rating-col rating --input movies.csv --out movies.h5 2>&1)
if grep -q "3 users, 3 items" <<<"$out"; then echo "ok   quoted csv fields"; else fail "quoted csv: $out"; fi
printf '1,Title 10, The,10,2\n1,"ok",11,2\n' > shifted.csv
expect_error "unquoted separator" "shifted.csv:2: expected 5 fields, found 4" "$bin" prep --format csv --input shifted.csv --out s.h5
printf '1,"open,10,2\n2,b,11,3\n' > open.csv
expect_error "unterminated quote" "open.csv:1: unterminated quoted field" "$bin" prep --format csv --input open.csv --out o.h5
no_file o.h5

# ---- format detection and mismatches -------------------------------------------------------------
python3 -c "
import json
print(json.dumps({str(u): [(u * 5 + k) % 23 for k in range(6)] for u in range(12)}))
" > train.json
expect_error "csv given on a JSON file" "train.json: the content does not look like format csv but like a JSON document" \
  "$bin" prep --format csv --input train.json --out j.h5
no_file j.h5
out=$("$bin" prep --input train.json --out j.h5 2>&1)
if grep -q "12 users" <<<"$out"; then echo "ok   .json detected without --format"; else fail "json detection: $out"; fi
"$bin" prep --input u.data --out auto.h5 >/dev/null && same_data plain.h5 auto.h5 \
  && echo "ok   u.data detected as ml-udata" || fail "u.data detection"
awk -F'\t' '{print $1 "::" $2 "::" $3 "::" $4}' u.data > ratings.dat
"$bin" prep --input ratings.dat --out dat.h5 >/dev/null && same_data plain.h5 dat.h5 \
  && echo "ok   ratings.dat detected as ml-dat" || fail "ratings.dat detection"
expect_error "ml-dat given on u.data" "give --format ml-udata" "$bin" prep --format ml-dat --input u.data --out m.h5
expect_error "csv with the wrong separator" "has no separator ','" "$bin" prep --header true --input <(printf 'u;i\n1;2\n') --out m.h5
no_file m.h5
# .tsv by name is tab-separated; JSON Lines records (compressed too) by name or by content.
cut -f1-3 u.data > cols.tsv
"$bin" prep --input cols.tsv --out tsv.h5 >/dev/null && "$bin" prep --format csv --sep tab --input cols.tsv --out tsv2.h5 >/dev/null \
  && same_data tsv.h5 tsv2.h5 && echo "ok   .tsv detected as tab-separated csv" || fail ".tsv detection"
awk -F'\t' '{printf "{\"user_id\": \"%s\", \"item_id\": %s, \"rating\": %s, \"timestamp\": %s, \"meta\": {\"a\": [1, null]}}\n", $1, $2, $3, $4}' u.data > u.jsonl
gzip -c u.jsonl > u.jsonl.gz; cp u.jsonl records.txt
for f in u.jsonl u.jsonl.gz records.txt; do
  "$bin" prep --input $f --out jl.h5 >/dev/null && same_data plain.h5 jl.h5 \
    && echo "ok   $f read as JSON Lines, the same data as u.data" || fail "$f as JSON Lines"
done
python3 -c "
import json
rows = [l.split('\t') for l in open('u.data')]
json.dump([{'user_id': u, 'item_id': int(i), 'rating': int(r), 'timestamp': int(t)} for u, i, r, t in rows], open('records.json', 'w'), indent=1)
"
"$bin" prep --input records.json --out ja.h5 >/dev/null && same_data plain.h5 ja.h5 \
  && echo "ok   a JSON array of records, the same data as u.data" || fail "JSON array of records"
expect_error "JSON Lines given as json" "give --format jsonl" "$bin" prep --format json --input u.jsonl --out jl2.h5
no_file jl2.h5

# ---- presplit roles, duplicate JSON keys --------------------------------------------------------
head -n 200 u.data > tr.tsv; tail -n +201 u.data > te.tsv
expect_error "presplit with two files and no roles" "option --presplit" \
  "$bin" prep --format ml-udata --split presplit --input tr.tsv te.tsv --out p.h5
no_file p.h5
out=$("$bin" prep --format ml-udata --split presplit --presplit train,test --input tr.tsv te.tsv --out p.h5 2>&1)
if grep -q "train 200, valid 0, test 40" <<<"$out"; then echo "ok   --presplit train,test"; else fail "presplit roles: $out"; fi
head -n 100 u.data > tr1.tsv; sed -n 101,200p u.data > tr2.tsv
out=$("$bin" prep --format ml-udata --split presplit --presplit train,test,train --input tr1.tsv te.tsv tr2.tsv --out p2.h5 2>&1)
if grep -q "train 200, valid 0, test 40" <<<"$out" && same_data p.h5 p2.h5; then echo "ok   --presplit train,test,train: two train files"
else fail "two train files: $out"; fi
python3 - <<'PY' && echo "ok   prep_config names each file's split" || fail "prep_config splits"
import json, h5py
cfg = json.loads(h5py.File("p2.h5", "r").attrs["prep_config"])
assert [(i["path"], i["split"], i["rows"]) for i in cfg["inputs"]] == [("tr1.tsv", "train", 100), ("te.tsv", "test", 40), ("tr2.tsv", "train", 100)], cfg["inputs"]
PY
printf '{"1": [1, 2],\n "2": [3],\n "1": [4]}\n' > dup.json
expect_error "duplicate JSON key" "dup.json:3: user key '1' appears again (first on line 1)" "$bin" prep --input dup.json --out d.h5
no_file d.h5
out=$("$bin" prep --input dup.json --json-duplicates merge --ratios 1,0,0 --out d.h5 2>&1)
if grep -q "train 4," <<<"$out"; then echo "ok   --json-duplicates merge"; else fail "json merge: $out"; fi

# ---- attributes rewritten by h5py: variable-length (a Python str) and fixed-length (bytes) -------
cp plain.h5 vlen.h5; cp plain.h5 fixed.h5
python3 -c "
import h5py, numpy as np
with h5py.File('vlen.h5', 'r+') as f: f.attrs['format'] = 'shardrec-dataset'; f.attrs['source'] = 'edited'
with h5py.File('fixed.h5', 'r+') as f: f.attrs['format'] = np.bytes_(b'shardrec-dataset')
"
for f in vlen.h5 fixed.h5; do
  h5dump -A "$f" > attrs.txt
  if grep -q "STRSIZE H5T_VARIABLE" attrs.txt || [ $f = fixed.h5 ]; then :; else fail "$f: h5py did not write a vlen string"; fi
  if "$bin" train --data $f --epochs 1 --quiet --final-eval false >/dev/null 2>err.txt; then
    echo "ok   dataset with a $f format attribute (h5py) loads"; else fail "$f: $(cat err.txt)"; fi
done
cp plain.h5 wrong.h5
python3 -c "
import h5py
with h5py.File('wrong.h5', 'r+') as f: f.attrs['format'] = 'something-else'
"
expect_error "vlen attribute with a wrong value" "root attribute 'format' is 'something-else'" "$bin" train --data wrong.h5 --epochs 1 --quiet

# ---- provenance: prep_config, fingerprint, timestamps; progress and --json ----------------------
python3 -c "
for r in range(120000): print(f'{r % 997}\t{(r * 31) % 1511}\t{1 + r % 5}\t{5000 + r}')
" > big.data
"$bin" prep --input big.data --out big.h5 --json --progress 0.000001 --seed 5 > summary.json 2>progress.err \
  || fail "prep --json: $(cat progress.err)"
grep -q "prep: big.data: .* rows, .* MiB read, .* MiB/s, [0-9]* s left reading" progress.err && echo "ok   progress lines on stderr" \
  || fail "no progress line: $(head -3 progress.err)"
python3 - <<'PY' && echo "ok   prep_config, fingerprint, timestamps and --json agree with the data" || fail "provenance"
import json, h5py, numpy as np
s = json.load(open("summary.json"))
f = h5py.File("big.h5", "r")
def fnv(data, h=0xcbf29ce484222325):
    for b in data: h = ((h ^ b) * 0x100000001b3) & (2**64 - 1)
    return h
# The fingerprint as docs/data-format.md defines it.
le = lambda v: int(v).to_bytes(8, "little")
ptr, item = f["train/indptr"][:], f["train/item"][:]
buf = le(f.attrs["num_users"]) + le(f.attrs["num_items"])
buf += ptr.astype("<u8").tobytes() + item.astype("<i8").tobytes()
for kind in ("user", "item"):
    for raw in f[f"mapping/{kind}_raw"][:]:
        buf += le(len(raw)) + raw
assert "%016x" % fnv(buf) == f.attrs["fingerprint"].decode() == s["fingerprint"], "fingerprint"
cfg = json.loads(f.attrs["prep_config"])
assert cfg["options"]["seed"] == "5" and cfg["options"]["format"] == "ml-udata" and cfg["options"]["ratios"] == "0.8,0.1,0.1"
assert {"threshold", "user-core", "dedup", "split", "features"} <= cfg["options"].keys()
inp = cfg["inputs"][0]
raw = open("big.data", "rb").read()
# fnv64_blocks: FNV-1a of each 1 MiB block, then FNV-1a of those hashes (8 bytes little-endian each).
blocks = b"".join(le(fnv(raw[k:k + 2**20])) for k in range(0, len(raw), 2**20))
assert inp["bytes"] == len(raw) and inp["fnv64_blocks"] == "%016x" % fnv(blocks) and inp["format"] == "ml-udata"
assert inp["rows"] == 120000 == s["rows_read"]
for split in ("train", "valid", "test"):
    t = f[f"{split}/timestamp"][:]
    assert t.dtype == np.float64 and t.shape == f[f"{split}/item"].shape and s[split] == t.shape[0]
assert f["train/timestamp"][:].min() >= 5000
# Where the time and memory went: every phase in order, peaks a high-water mark.
ph = s["phases"]
assert [p["name"] for p in ph] == ["read", "ids", "exchange", "filter", "dense ids", "split", "write"], ph
assert all(p["seconds"] >= 0 for p in ph) and ph[0]["peak_rss_mib"] > 0
assert all(a["peak_rss_mib"] <= b["peak_rss_mib"] for a, b in zip(ph, ph[1:])), ph
PY

# Feature columns keep their names: a csv header's, a RecBole column's tokens (one-hot).
python3 -c "
print('item,action,comedy')
for i in range(1, 41): print(f'{i},{i % 2},{(i + 1) % 2}')
" > genre.csv
printf 'item_id:token\tdecade:token\n' > items.item
for i in $(seq 1 40); do printf '%d\t%ds\n' $i $((1960 + 10 * (i % 3))); done >> items.item
"$bin" prep --format ml-udata --input u.data --out feat.h5 --features genre=genre.csv --features decade=items.item:recbole:decade \
  >/dev/null 2>feat.err || fail "prep with features: $(cat feat.err)"
python3 - <<'PY' && echo "ok   feature columns keep their names" || fail "feature column names"
import h5py
f = h5py.File("feat.h5", "r")
names = lambda k: [x.decode() for x in f["feature_columns/" + k][:]]
assert names("genre") == ["action", "comedy"], names("genre")
assert names("decade") == ["1960s", "1970s", "1980s"], names("decade")
assert sorted(f["features"].keys()) == ["decade", "genre"]
PY

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all prep input cases ok"
