#include "io/parallel_prep.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "base/error.h"
#include "base/log.h"
#include "io/dataset.h"
#include "io/input.h"
#include "io/parsers.h"
#include "io/spill.h"

namespace shardrec::io {
namespace {

using namespace prep_steps;

constexpr uint64_t kNoError = ~uint64_t{0};
constexpr uint64_t kFileEnd = 0xffffffffULL;  // an error found after every piece of a file

uint64_t error_key(size_t file, uint64_t piece) { return (static_cast<uint64_t>(file) << 32) | piece; }

// The first error in input order among the ranks' candidates (key kNoError: none): thrown on every
// rank with that rank's message, so that it prints once, as the single-rank run would print it.
void agree_first(dist::Comm& comm, uint64_t key, const std::string& message) {
  const int n = comm.size();
  std::vector<uint64_t> keys(n);
  comm.allgather_u64(key, keys.data());
  int first = -1;
  for (int k = 0; k < n; ++k)
    if (keys[k] != kNoError && (first < 0 || keys[k] < keys[first])) first = k;
  if (first < 0) return;
  uint64_t len = comm.rank() == first ? message.size() : 0;
  comm.broadcast(&len, sizeof len, first);
  std::string msg(len, '\0');
  if (comm.rank() == first) msg = message;
  comm.broadcast(msg.data(), len, first);
  throw AgreedError(msg);
}

// Records the first (lowest-key) error a rank finds.
struct FirstError {
  uint64_t key = kNoError;
  std::string message;
  void note(uint64_t k, const std::string& m) {
    if (k < key) {
      key = k;
      message = m;
    }
  }
};

// Strings through an all-to-all: lengths, then bytes.
std::vector<std::vector<std::string>> exchange_strings(dist::Comm& comm,
                                                       const std::vector<std::vector<const std::string*>>& send) {
  const int n = comm.size();
  std::vector<std::vector<uint64_t>> lens(n);
  std::vector<std::vector<char>> bytes(n);
  for (int k = 0; k < n; ++k)
    for (const std::string* s : send[k]) {
      lens[k].push_back(s->size());
      bytes[k].insert(bytes[k].end(), s->begin(), s->end());
    }
  const auto rl = dist::all_to_all(comm, lens);
  lens.clear();
  const auto rb = dist::all_to_all(comm, bytes);
  bytes.clear();
  std::vector<std::vector<std::string>> out(n);
  for (int k = 0; k < n; ++k) {
    size_t at = 0;
    out[k].reserve(rl[k].size());
    for (uint64_t len : rl[k]) {
      out[k].emplace_back(rb[k].data() + at, len);
      at += len;
    }
  }
  return out;
}

// ---- Reading the inputs in pieces -------------------------------------------------------------------

// What the ranks learned of one input file.
struct FileInfo {
  std::string path;
  int slot = 0;
  FileLayout layout;
  bool layout_ok = false;
  int64_t rows = 0;
  uint64_t hash = 0;
  bool has_rating = false, has_timestamp = false;
};

class RawFile {
 public:
  explicit RawFile(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "rb")) {
    if (!f_) fail(path + ": cannot open file: " + std::strerror(errno));
  }
  ~RawFile() { std::fclose(f_); }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;
  // Calls f(data, n) for the bytes [begin, end) in blocks; stops early when f returns false.
  // Every block but the last is `chunk` bytes.
  template <class F>
  void scan(uint64_t begin, uint64_t end, F&& f, size_t chunk = size_t{1} << 20) {
    if (begin >= end) return;
    if (std::fseek(f_, static_cast<long>(begin), SEEK_SET) != 0)
      fail(path_ + ": cannot seek to byte " + std::to_string(begin) + ": " + std::strerror(errno));
    buf_.resize(chunk);
    for (uint64_t at = begin; at < end;) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(buf_.size(), end - at));
      const size_t got = std::fread(buf_.data(), 1, want, f_);
      if (got == 0) fail(path_ + ": read error or the file ended early at byte " + std::to_string(at));
      if (!f(buf_.data(), got)) return;
      at += got;
    }
  }

 private:
  std::string path_;
  std::FILE* f_;
  std::vector<char> buf_;
};

// Cuts a splittable file into `pieces` pieces at record boundaries. Rank r reads the pieces
// [first_piece(r), first_piece(r + 1)), a contiguous run (none when pieces < ranks for some).
// Returns this rank's pieces, in order. Collective. Also hashes the 1 MiB blocks that start in
// this rank's nominal ranges into `blocks`.
struct Cut {
  uint64_t piece = 0;  // index within the file
  uint64_t begin = 0, end = 0;
  int64_t first_line = 1;
};

uint64_t first_piece(uint64_t pieces, int rank, int ranks) {
  return pieces * static_cast<uint64_t>(rank) / static_cast<uint64_t>(ranks);
}

std::vector<Cut> cut_file(dist::Comm& comm, const FileLayout& l, uint64_t pieces, std::vector<uint64_t>& blocks) {
  const int n = comm.size(), r = comm.rank();
  const bool csv = l.options.format == Format::Csv;
  // Nominal starts: c[0] = 0, c[k] = first_record_end + k * (size - first_record_end) / pieces.
  std::vector<uint64_t> c(pieces + 1);
  for (uint64_t k = 1; k < pieces; ++k)
    c[k] = l.first_record_end + static_cast<uint64_t>(static_cast<unsigned __int128>(k) * (l.size - l.first_record_end) / pieces);
  c[0] = 0;
  c[pieces] = l.size;
  const uint64_t lo = first_piece(pieces, r, n), hi = first_piece(pieces, r + 1, n);
  RawFile f(l.path);
  // One pass over this rank's nominal ranges [c[lo], c[hi]) and the checksum's blocks whose start
  // lies in them, [b0, b1): the quotes and newlines of each range, and the blocks' hashes.
  std::vector<uint64_t> quotes(hi - lo, 0), newlines(hi - lo, 0);
  if (hi > lo) {
    const uint64_t B = BlockHash::kBlock;
    const uint64_t b0 = (c[lo] + B - 1) / B, b1 = std::min((c[hi] + B - 1) / B, (l.size + B - 1) / B);
    uint64_t from = c[lo], to = c[hi];
    if (b1 > b0) {
      from = std::min(from, b0 * B);
      to = std::max(to, std::min(l.size, b1 * B));
    }
    from = from / B * B;  // the scan's chunks are then whole blocks
    uint64_t at = from, k = lo;
    f.scan(from, to, [&](const char* p, size_t m) {
      const uint64_t end = at + m;
      while (k < hi && c[k + 1] <= at) ++k;
      for (uint64_t j = k; j < hi && c[j] < end; ++j) {
        const char* a = p + (std::max(at, c[j]) - at);
        const char* e = p + (std::min(end, c[j + 1]) - at);
        if (a >= e) continue;
        newlines[j - lo] += static_cast<uint64_t>(std::count(a, e, '\n'));
        if (csv) quotes[j - lo] += static_cast<uint64_t>(std::count(a, e, '"'));
      }
      const uint64_t first = std::max(at / B, b0), last = std::min((end + B - 1) / B, b1);
      if (first < last)
        BlockHash::hash_blocks(p + (first * B - at), static_cast<size_t>(std::min(end, last * B) - first * B), blocks);
      at = end;
      return true;
    }, 4 * B);
  }
  std::vector<uint64_t> q, nl;
  for (const auto& v : dist::allgather(comm, quotes)) q.insert(q.end(), v.begin(), v.end());
  for (const auto& v : dist::allgather(comm, newlines)) nl.insert(nl.end(), v.begin(), v.end());
  // Each piece's start: the first record boundary at or after c[k], and the lines before it.
  std::vector<uint64_t> start(hi - lo, l.size);
  std::vector<int64_t> line(hi - lo, 1);
  bool quoted = false;
  uint64_t before = 0;  // newlines before c[k]
  for (uint64_t k = 0; k < lo; ++k) {
    quoted ^= (q[k] & 1) != 0;
    before += nl[k];
  }
  for (uint64_t k = lo; k < hi; ++k) {
    if (k == 0) {
      start[0] = 0;
    } else {
      bool in_quotes = quoted;
      uint64_t at = c[k] - 1, lines = 0;
      bool scanned_first = false;
      f.scan(c[k] - 1, l.size, [&](const char* p, size_t m) {
        for (size_t i = 0; i < m; ++i, ++at) {
          const char ch = p[i];
          if (!scanned_first) {
            // The byte before c[k] (counted in the range before): a line end there outside quotes
            // (a line end does not change the state) means c[k] starts a record.
            scanned_first = true;
            if (ch == '\n' && !in_quotes) {
              start[k - lo] = at + 1;
              return false;
            }
            continue;
          }
          if (csv && ch == '"') {
            in_quotes = !in_quotes;
          } else if (ch == '\n') {
            ++lines;
            if (!in_quotes) {
              start[k - lo] = at + 1;
              return false;
            }
          }
        }
        return true;
      });
      // Lines before the start: those before c[k], plus those from c[k] to the start.
      line[k - lo] = 1 + static_cast<int64_t>(before + lines);
    }
    quoted ^= (q[k] & 1) != 0;
    before += nl[k];
  }
  std::vector<uint64_t> starts;
  for (const auto& v : dist::allgather(comm, start)) starts.insert(starts.end(), v.begin(), v.end());
  std::vector<Cut> cuts;
  for (uint64_t k = lo; k < hi; ++k) {
    Cut cut{k, starts[k], k + 1 < pieces ? std::max(starts[k], starts[k + 1]) : l.size, line[k - lo]};
    if (k > 0 && cut.begin < l.first_record_end) cut.begin = l.first_record_end;
    cut.end = std::max(cut.end, cut.begin);
    cuts.push_back(cut);
  }
  return cuts;
}

// ---- Ids ----------------------------------------------------------------------------------------------

// Provisional ids: each distinct raw id is numbered by the rank its hash picks, in the order the
// ranks send them. Returns rank id -> provisional id; `owned` gets the raw ids this rank numbered
// (provisional ids [bases[rank], bases[rank] + owned.size())), `bases` every rank's base (and the
// total last).
std::vector<int64_t> provisional_ids(dist::Comm& comm, const std::vector<const std::string*>& names,
                                     std::vector<std::string>& owned, std::vector<int64_t>& bases) {
  const int n = comm.size();
  std::vector<std::vector<const std::string*>> send(n);
  std::vector<int> dest(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    Fnv64 h;
    h.add(names[i]->data(), names[i]->size());
    dest[i] = static_cast<int>(h.h % static_cast<uint64_t>(n));
    send[dest[i]].push_back(names[i]);
  }
  auto got = exchange_strings(comm, send);
  IdDict index;  // numbers the raw ids in the order they arrive
  std::vector<std::vector<int64_t>> reply(n);
  for (int k = 0; k < n; ++k) {
    for (const std::string& s : got[k]) reply[k].push_back(index.intern(s));
    got[k] = {};
  }
  owned = std::move(index.names);
  std::vector<uint64_t> counts(n);
  comm.allgather_u64(owned.size(), counts.data());
  bases.assign(n + 1, 0);
  for (int k = 0; k < n; ++k) bases[k + 1] = bases[k] + static_cast<int64_t>(counts[k]);
  const auto back = dist::all_to_all(comm, reply);
  std::vector<int64_t> out(names.size());
  std::vector<size_t> next(n, 0);
  for (size_t i = 0; i < names.size(); ++i) out[i] = bases[dest[i]] + back[dest[i]][next[dest[i]]++];
  return out;
}

// Dense ids of the raw ids that remain, in prepare()'s order, by a sample sort over the ranks.
// `mine`: raw ids this rank owns (each raw id is owned by one rank). Returns their dense ids;
// `block` gets this rank's block of the sorted order and `begin` its first dense id.
struct SortKey {
  int64_t value;
  const std::string* s;
};

std::vector<int64_t> dense_order(dist::Comm& comm, const std::vector<const std::string*>& mine,
                                 std::vector<std::string>& block, int64_t& begin, int64_t& total) {
  const int n = comm.size();
  // Numeric order when every remaining raw id is an integer.
  int64_t non_integer = 0;
  std::vector<SortKey> keys(mine.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    keys[i] = {0, mine[i]};
    non_integer += !parse_integer(*mine[i], keys[i].value);
  }
  comm.allreduce_sum(&non_integer, 1);
  const bool numeric = non_integer == 0;
  auto less = [numeric](const SortKey& a, const SortKey& b) {
    if (numeric && a.value != b.value) return a.value < b.value;
    return *a.s < *b.s;
  };
  std::vector<size_t> order(mine.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return less(keys[a], keys[b]); });
  // Splitters from evenly spaced samples of every rank.
  std::vector<const std::string*> samples;
  const size_t per = std::min<size_t>(mine.size(), 64);
  for (size_t k = 0; k < per; ++k) samples.push_back(keys[order[(2 * k + 1) * mine.size() / (2 * per)]].s);
  std::vector<std::vector<const std::string*>> to_all(n, samples);
  auto all = exchange_strings(comm, to_all);
  std::vector<std::string> pool;
  for (auto& v : all)
    for (auto& s : v) pool.push_back(std::move(s));
  std::vector<SortKey> pk(pool.size());
  for (size_t i = 0; i < pool.size(); ++i) {
    pk[i] = {0, &pool[i]};
    parse_integer(pool[i], pk[i].value);
  }
  std::sort(pk.begin(), pk.end(), less);
  std::vector<SortKey> splitters;
  for (int k = 1; k < n && !pk.empty(); ++k) splitters.push_back(pk[static_cast<size_t>(k) * pk.size() / n]);
  // Each raw id to the rank of its range, in sorted order.
  std::vector<std::vector<const std::string*>> send(n);
  std::vector<int> dest(mine.size());
  for (size_t j : order) {
    dest[j] = static_cast<int>(std::upper_bound(splitters.begin(), splitters.end(), keys[j], less) - splitters.begin());
    send[dest[j]].push_back(mine[j]);
  }
  auto got = exchange_strings(comm, send);
  std::vector<std::string> recv;
  std::vector<size_t> from_begin(n + 1, 0);
  for (int k = 0; k < n; ++k) {
    from_begin[k + 1] = from_begin[k] + got[k].size();
    for (auto& s : got[k]) recv.push_back(std::move(s));
    got[k] = {};
  }
  std::vector<SortKey> rk(recv.size());
  for (size_t i = 0; i < recv.size(); ++i) {
    rk[i] = {0, &recv[i]};
    parse_integer(recv[i], rk[i].value);
  }
  std::vector<size_t> rorder(recv.size());
  std::iota(rorder.begin(), rorder.end(), size_t{0});
  std::sort(rorder.begin(), rorder.end(), [&](size_t a, size_t b) { return less(rk[a], rk[b]); });
  std::vector<uint64_t> counts(n);
  comm.allgather_u64(recv.size(), counts.data());
  begin = 0;
  total = 0;
  for (int k = 0; k < n; ++k) {
    if (k < comm.rank()) begin += static_cast<int64_t>(counts[k]);
    total += static_cast<int64_t>(counts[k]);
  }
  std::vector<int64_t> rank_of(recv.size());
  for (size_t p = 0; p < rorder.size(); ++p) rank_of[rorder[p]] = begin + static_cast<int64_t>(p);
  std::vector<std::vector<int64_t>> reply(n);
  for (int k = 0; k < n; ++k)
    reply[k].assign(rank_of.begin() + static_cast<std::ptrdiff_t>(from_begin[k]),
                    rank_of.begin() + static_cast<std::ptrdiff_t>(from_begin[k + 1]));
  block.clear();
  block.reserve(recv.size());
  for (size_t p : rorder) block.push_back(std::move(recv[p]));
  const auto back = dist::all_to_all(comm, reply);
  std::vector<int64_t> out(mine.size());
  std::vector<size_t> next(n, 0);
  for (size_t j : order) out[j] = back[dest[j]][next[dest[j]]++];
  return out;
}

// ---- Rows ---------------------------------------------------------------------------------------------

// One interaction as read: rank-local ids, then provisional ones; `pos` is its place in the input
// (the piece's ordinal over every file, then the row within the piece), which puts a user's rows
// back in input order however they arrive. 32 bytes.
struct Rec {
  int32_t user, item;
  float rating;
  int32_t slot;  // the split it came in (presplit), else 0
  double timestamp;
  uint64_t pos;
};
constexpr int kPosBits = 40;

// One interaction once grouped: 24 bytes (ids below 2^31, checked where they are made).
struct Row {
  int32_t user, item;
  float rating;
  int32_t slot;
  double timestamp;
};

// Exchange buffers leave their pages untouched until rows are written (std::vector<T>(n) would
// zero them all at once).
template <class T>
struct UninitAlloc : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitAlloc<U>;
  };
  UninitAlloc() = default;
  template <class U>
  UninitAlloc(const UninitAlloc<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
};
template <class T>
using Buf = std::vector<T, UninitAlloc<T>>;

int32_t narrow(int64_t id, const char* what) {
  if (id > INT32_MAX) fail(std::string("prep: more than 2^31 distinct ") + what + " is not supported");
  return static_cast<int32_t>(id);
}

// An all-to-all of records in which fill(count, out, at) appends the records for rank k in order
// (called twice: to count, then to fill; `out` is null when counting, `count` gets the records).
// Returns what the ranks sent, in source-rank order.
template <class T, class Fill>
Buf<T> exchange_rows(dist::Comm& comm, Fill fill) {
  const int n = comm.size();
  std::vector<uint64_t> scount(n, 0), rcount(n);
  fill(scount.data(), nullptr, nullptr);
  std::vector<size_t> sb(n), sd(n), rb(n), rd(n);
  size_t stotal = 0, rtotal = 0;
  for (int k = 0; k < n; ++k) {
    sd[k] = stotal;
    stotal += scount[k];
  }
  Buf<T> sbuf(stotal);
  std::vector<size_t> at(sd);
  fill(nullptr, sbuf.data(), at.data());
  if (n == 1) return sbuf;  // nothing to move
  comm.alltoall_u64(scount.data(), rcount.data());
  for (int k = 0; k < n; ++k) {
    rd[k] = rtotal * sizeof(T);
    rb[k] = rcount[k] * sizeof(T);
    rtotal += rcount[k];
    sb[k] = scount[k] * sizeof(T);
    sd[k] *= sizeof(T);
  }
  Buf<T> rbuf(rtotal);
  comm.alltoallv(sbuf.data(), sb.data(), sd.data(), rbuf.data(), rb.data(), rd.data());
  return rbuf;
}

// Sizes of the streamed stages, from the memory budget (see PrepMemory).
struct Sizes {
  uint64_t max_piece_bytes;  // a piece of an input file parsed at once
  size_t round_rows;         // rows a rank sends in one round of an exchange
  size_t bucket_rows;        // rows grouped at once
  std::string dir;           // spill files; empty: memory
};

Sizes sizes_for(const PrepMemory& mem, int ranks) {
  Sizes s;
  if (mem.budget_bytes == 0) {
    // Large pieces: each piece parses its distinct ids anew (about 2.5 s a piece for 2M users).
    // Rounds and buckets small: their buffers add to the stores being emptied and filled.
    s.max_piece_bytes = uint64_t{256} << 20;
    s.round_rows = std::max<size_t>((size_t{1} << 20) / static_cast<size_t>(ranks), 1);
    s.bucket_rows = size_t{2} << 20;
    return s;
  }
  // A parsed piece takes about 1.3 bytes a byte of text, a round about 4 record copies (read,
  // send, receive, scattered) of up to `ranks` senders, a bucket 3 copies (read, sorted, kept).
  const uint64_t b = mem.budget_bytes;
  s.max_piece_bytes = std::max<uint64_t>(b / 6, 1);
  // (At most 1 GiB a rank: MPI counts bytes in ints.)
  s.round_rows = std::clamp<size_t>(b / (sizeof(Rec) * 16 * static_cast<uint64_t>(ranks)), 1,
                                    (size_t{1} << 30) / sizeof(Rec) / static_cast<size_t>(ranks));
  s.bucket_rows = std::max<size_t>(b / (sizeof(Rec) * 12), 1);
  s.dir = mem.tmp_dir.empty() ? "." : mem.tmp_dir;
  return s;
}

// Stable counting sort of rows by key(row) - first (keys in [first, first + count)).
template <class T, class Key>
void group_by(Buf<T>& rows, int64_t first, int64_t count, Key key, Buf<T>& scratch) {
  std::vector<size_t> at(static_cast<size_t>(count) + 1, 0);
  for (const T& r : rows) ++at[static_cast<size_t>(key(r) - first + 1)];
  std::partial_sum(at.begin(), at.end(), at.begin());
  scratch.resize(rows.size());
  for (const T& r : rows) scratch[at[static_cast<size_t>(key(r) - first)]++] = r;
  rows.swap(scratch);
}

// Sums at each key's rank the counts the ranks hold for it; each(emit) calls emit(rank, key,
// count). Returns this rank's sums for keys [base, base + size).
template <class Each>
std::vector<int64_t> sum_at_owners(dist::Comm& comm, int64_t base, int64_t size, Each each) {
  std::vector<std::vector<int64_t>> send(comm.size());
  each([&](int rank, int64_t key, int64_t count) {
    send[rank].push_back(key);
    send[rank].push_back(count);
  });
  std::vector<int64_t> sum(static_cast<size_t>(size), 0);
  for (const auto& v : dist::all_to_all(comm, send))
    for (size_t j = 0; j < v.size(); j += 2) sum[static_cast<size_t>(v[j] - base)] += v[j + 1];
  return sum;
}

// Consecutive ranges of keys holding at most `limit` rows each (a key over the limit alone), and
// where each range's rows start in a store holding them range after range.
struct Buckets {
  std::vector<int64_t> key_end;  // range b: keys [key_end[b - 1], key_end[b])
  std::vector<size_t> start;     // range b: rows [start[b], start[b + 1])
  std::vector<size_t> cursor;    // the next row written to each range
  Buckets(const std::vector<int64_t>& rows_of_key, size_t limit) {
    start.push_back(0);
    size_t in = 0;
    for (size_t k = 0; k < rows_of_key.size(); ++k) {
      const auto c = static_cast<size_t>(rows_of_key[k]);
      if (in > 0 && in + c > limit) {
        key_end.push_back(static_cast<int64_t>(k));
        start.push_back(start.back() + in);
        in = 0;
      }
      in += c;
    }
    key_end.push_back(static_cast<int64_t>(rows_of_key.size()));
    start.push_back(start.back() + in);
    cursor.assign(start.begin(), start.end() - 1);
  }
  size_t count() const { return key_end.size(); }
  // Range b of `store` into rows, grouped by key(row) (its keys lie in the range), its memory
  // then released.
  template <class T, class Key>
  void load(Spill<T>& store, size_t b, Key key, Buf<T>& rows, Buf<T>& scratch) const {
    const int64_t first = b == 0 ? 0 : key_end[b - 1];
    rows.resize(start[b + 1] - start[b]);
    store.read(start[b], rows.size(), rows.data());
    store.release_before(start[b + 1]);
    group_by(rows, first, key_end[b] - first, key, scratch);
  }
  size_t of(int64_t key) const {
    return static_cast<size_t>(std::upper_bound(key_end.begin(), key_end.end(), key) - key_end.begin());
  }
  // Writes rows (in their order within each range) to their ranges of `store`.
  template <class T, class Key>
  void put(Spill<T>& store, const T* rows, size_t m, Key key, Buf<T>& scratch) {
    if (count() == 1) {
      store.write(cursor[0], rows, m);
      cursor[0] += m;
      return;
    }
    std::vector<size_t> at(count() + 1, 0);
    std::vector<uint32_t> b(m);
    for (size_t i = 0; i < m; ++i) {
      b[i] = static_cast<uint32_t>(of(key(rows[i])));
      ++at[b[i] + 1];
    }
    std::partial_sum(at.begin(), at.end(), at.begin());
    scratch.resize(m);
    std::vector<size_t> next(at.begin(), at.end() - 1);
    for (size_t i = 0; i < m; ++i) scratch[next[b[i]]++] = rows[i];
    for (size_t k = 0; k < count(); ++k)
      if (at[k + 1] > at[k]) {
        store.write(cursor[k], scratch.data() + at[k], at[k + 1] - at[k]);
        cursor[k] += at[k + 1] - at[k];
      }
  }
};

// The rows of `src` to the ranks dest(row) picks (which may rewrite the row first), in rounds of
// at most `round` rows a rank, every rank in every round; put(rows, m) gets each round's arrivals:
// the sources in rank order, each source's rows in its order. src's memory goes as it is read.
template <class T, class Dest, class Put>
void stream_rows(dist::Comm& comm, Spill<T>& src, size_t round, Dest dest, Put put) {
  double rounds = std::ceil(static_cast<double>(src.size()) / static_cast<double>(round));
  comm.allreduce_max(&rounds, 1);
  Buf<T> in;
  std::vector<int> to;
  for (uint64_t j = 0; j < static_cast<uint64_t>(rounds); ++j) {
    const size_t a = std::min<size_t>(src.size(), j * round), b = std::min(src.size(), a + round);
    in.resize(b - a);
    src.read(a, b - a, in.data());
    src.release_before(b);
    to.resize(in.size());
    for (size_t i = 0; i < in.size(); ++i) to[i] = dest(in[i]);
    const Buf<T> got = exchange_rows<T>(comm, [&](uint64_t* count, T* buf, size_t* at) {
      for (size_t i = 0; i < in.size(); ++i)
        if (count) ++count[to[i]];
        else buf[at[to[i]]++] = in[i];
    });
    put(got.data(), got.size());
  }
}

// Appends rows to a store through a buffer of `block` rows.
template <class T>
struct Appender {
  explicit Appender(Spill<T>& s) : store(s) {}
  Spill<T>& store;
  size_t block = size_t{1} << 16;
  Buf<T> buf;
  void add(const T& r) {
    buf.push_back(r);
    if (buf.size() >= block) flush();
  }
  void flush() {
    store.append(buf.data(), buf.size());
    buf.clear();
  }
};

int64_t global_sum(dist::Comm& comm, int64_t v) {
  comm.allreduce_sum(&v, 1);
  return v;
}

// Local ids of a whole file's distinct ids in the rank's dictionary (pieces intern into it as they
// are parsed).
std::vector<int32_t> add_names(IdDict& d, const std::vector<std::string>& ids) {
  std::vector<int32_t> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out[i] = narrow(d.intern(ids[i]), "ids in a rank's share");
  return out;
}

std::vector<const std::string*> list(const IdDict& d) {
  std::vector<const std::string*> v;
  v.reserve(d.names.size());
  for (const std::string& s : d.names) v.push_back(&s);
  return v;
}

}  // namespace

void add_phase(dist::Comm& comm, PrepReport& rep, const char* name, double seconds) {
  double peak = peak_rss_mib();
  comm.allreduce_max(&peak, 1);
  rep.phases.push_back({name, seconds, peak});
}

// The split rows of a shard: in a store each, grouped by user, and every user's row count.
struct PreparedShard::Parts {
  explicit Parts(const std::string& dir) : rows{Spill<Row>(dir), Spill<Row>(dir), Spill<Row>(dir)} {}
  Spill<Row> rows[3];
  std::vector<int64_t> user_rows[3];  // per user of the shard's block
};

int64_t PreparedShard::rows(int split) const { return parts ? static_cast<int64_t>(parts->rows[split].size()) : 0; }

Interactions PreparedShard::split(int s) const {
  Interactions t;
  if (!parts) return t;
  std::vector<Row> v;
  parts->rows[s].read(0, parts->rows[s].size(), v);
  for (const Row& r : v) {
    t.user.push_back(r.user);
    t.item.push_back(r.item);
    if (has_rating) t.rating.push_back(r.rating);
    if (has_timestamp) t.timestamp.push_back(r.timestamp);
  }
  return t;
}

PreparedShard prepare_parallel(dist::Comm& comm, const PrepOptions& options, PrepReport* report,
                               uint64_t piece_bytes, const PrepMemory& memory) {
  const int n = comm.size(), me = comm.rank();
  validate(options);
  const bool pre = options.split == SplitMode::Presplit;
  const auto slots = input_slots(options);
  const Sizes sz = sizes_for(memory, n);
  PrepReport rep;
  // Phase marks: collective (the fullest rank's peak), at points every rank passes.
  auto mark_time = std::chrono::steady_clock::now();
  auto phase = [&](const char* name) {
    const auto now = std::chrono::steady_clock::now();
    add_phase(comm, rep, name, std::chrono::duration<double>(now - mark_time).count());
    mark_time = now;
  };

  // 1. Read: every rank plans every file the same way; errors are ranked by input order. Each
  // piece is parsed, its ids numbered on this rank and its rows stored before the next.
  std::vector<FileInfo> files(slots.size());
  std::vector<uint64_t> piece_base(slots.size() + 1, 0);  // ordinal of each file's first piece
  struct Mine {
    size_t file;
    uint64_t piece;
    int64_t rows;
    int64_t bad = -1;  // the first row outside the rating range, within the piece
    double bad_value = 0;
  };
  std::vector<Mine> mine;
  std::vector<int> piece_flags;  // per file: has rating, has timestamp (from its piece 0), where read here
  IdDict users, items;  // this rank's raw ids, numbered first seen first
  std::vector<int64_t> user_rows;  // rows of each
  Spill<Rec> read(sz.dir);
  FirstError err;
  int whole_turn = 0;
  uint64_t done_bytes = 0;
  int64_t done_rows = 0;
  // own_ids: a whole file, whose ids index its own user_ids / item_ids; else a piece, whose ids
  // are the rank's dictionaries' already.
  auto take = [&](size_t f, uint64_t piece, RawInteractions&& raw, bool own_ids) {
    const FileInfo& info = files[f];
    Mine m{f, piece, static_cast<int64_t>(raw.size())};
    std::vector<int32_t> u, it;
    if (own_ids) {
      u = add_names(users, raw.user_ids);
      it = add_names(items, raw.item_ids);
    }
    raw.user_ids = {};
    raw.item_ids = {};
    if (users.names.size() > INT32_MAX || items.names.size() > INT32_MAX)
      fail("prep: more than 2^31 distinct ids in a rank's share is not supported");
    user_rows.resize(users.names.size(), 0);
    const uint64_t ordinal = piece_base[f] + piece;
    if (ordinal >= (uint64_t{1} << (64 - kPosBits)) || raw.size() >= (size_t{1} << kPosBits))
      fail(info.path + ": too many pieces or rows in a piece for prep's row positions");
    Appender<Rec> out{read};
    for (size_t r = 0; r < raw.size(); ++r) {
      const float rating = raw.has_rating ? raw.rating[r] : 0.0f;
      if (options.rating_range && raw.has_rating && m.bad < 0) {
        const double v = rating;
        if (!(v >= options.rating_range->first && v <= options.rating_range->second)) {
          m.bad = static_cast<int64_t>(r);
          m.bad_value = v;
        }
      }
      const int32_t user = own_ids ? u[raw.user[r]] : static_cast<int32_t>(raw.user[r]);
      const int32_t item = own_ids ? it[raw.item[r]] : static_cast<int32_t>(raw.item[r]);
      ++user_rows[user];
      out.add({user, item, rating, info.slot, raw.has_timestamp ? raw.timestamp[r] : 0.0, (ordinal << kPosBits) | r});
    }
    out.flush();
    if (piece == 0) {
      piece_flags[2 * f] = raw.has_rating;
      piece_flags[2 * f + 1] = raw.has_timestamp;
    }
    mine.push_back(m);
  };
  // The caller's progress line, over this rank's pieces so far.
  auto layout_for = [&](const FileLayout& l) {
    FileLayout c = l;
    if (options.progress)
      c.options.progress = [&, base_b = done_bytes, base_r = done_rows](const std::string& file, uint64_t b, int64_t r) {
        options.progress(file, base_b + b, base_r + r);
      };
    return c;
  };
  piece_flags.assign(2 * slots.size(), 0);
  for (size_t f = 0; f < slots.size(); ++f) {
    FileInfo& info = files[f];
    info.path = slots[f].first;
    info.slot = slots[f].second;
    piece_base[f + 1] = piece_base[f] + 1;
    try {
      info.layout = file_layout(info.path, options);
      info.layout_ok = true;
    } catch (const std::exception& e) {
      err.note(error_key(f, 0), e.what());
      continue;
    }
    const FileLayout& l = info.layout;
    const uint64_t body = l.size - std::min(l.size, l.first_record_end);
    // At least piece_bytes a piece, at most one a rank, unless a piece would exceed the budget's.
    uint64_t cuts = 1;
    if (l.splittable) {
      cuts = std::clamp<uint64_t>(body / std::max<uint64_t>(piece_bytes, 1), 1, static_cast<uint64_t>(n));
      cuts = std::max(cuts, (body + sz.max_piece_bytes - 1) / sz.max_piece_bytes);
      cuts = std::min<uint64_t>(cuts, std::max<uint64_t>(body, 1));
    }
    piece_base[f + 1] = piece_base[f] + cuts;
    if (cuts > 1) {
      std::vector<uint64_t> blocks;
      std::vector<Cut> my_cuts;
      try {
        my_cuts = cut_file(comm, l, cuts, blocks);
      } catch (const std::exception& e) {
        err.note(error_key(f, first_piece(cuts, me, n)), e.what());
      }
      // The checksum: every rank's blocks in order.
      const auto all = dist::allgather(comm, blocks);
      std::vector<uint64_t> flat;
      for (const auto& v : all) flat.insert(flat.end(), v.begin(), v.end());
      info.hash = BlockHash::combine(flat.data(), flat.size());
      for (const Cut& cut : my_cuts) {
        if (cut.end <= cut.begin || error_key(f, cut.piece) > err.key) continue;  // nothing, or past an error
        try {
          take(f, cut.piece, parse_piece(layout_for(l), cut.begin, cut.end, cut.first_line, &users, &items), false);
          done_bytes += cut.end - cut.begin;
          done_rows += mine.back().rows;
        } catch (const std::exception& e) {
          err.note(error_key(f, cut.piece), e.what());
        }
      }
    } else {
      const int reader = whole_turn++ % n;
      uint64_t hash = 0;
      if (reader == me) {
        try {
          RawInteractions raw = parse_whole(layout_for(l));
          hash = raw.file_hash;
          take(f, 0, std::move(raw), true);
          done_bytes += l.size;
          done_rows += mine.back().rows;
        } catch (const std::exception& e) {
          err.note(error_key(f, 0), e.what());
        }
      }
      int64_t h = static_cast<int64_t>(hash);
      comm.allreduce_sum(&h, 1);  // one rank contributes
      info.hash = static_cast<uint64_t>(h);
    }
  }
  // Rows per file and piece; an empty file is an error after its pieces.
  std::vector<int64_t> piece_rows(piece_base.back(), 0);
  {
    for (const Mine& m : mine) piece_rows[piece_base[m.file] + m.piece] = m.rows;
    comm.allreduce_sum(piece_rows.data(), piece_rows.size());
    std::vector<int64_t> flags(piece_flags.begin(), piece_flags.end());
    comm.allreduce_sum(flags.data(), flags.size());
    for (size_t f = 0; f < slots.size(); ++f) {
      FileInfo& info = files[f];
      for (uint64_t k = piece_base[f]; k < piece_base[f + 1]; ++k) info.rows += piece_rows[k];
      info.has_rating = flags[2 * f] != 0;
      info.has_timestamp = flags[2 * f + 1] != 0;
      if (info.layout_ok && info.rows == 0) err.note(error_key(f, kFileEnd), info.path + ": empty file: no interactions found");
    }
  }
  agree_first(comm, err.key, err.message);
  for (const FileInfo& info : files)
    rep.inputs.push_back({info.path, pre ? kSplitRoles[info.slot] : "all", info.layout.options.format, info.layout.size,
                          info.hash, info.rows});

  // Per file, in order: the checks prepare() makes after reading.
  bool has_rating = true, has_timestamp = true;
  for (const FileInfo& info : files) {
    has_rating = has_rating && info.has_rating;
    has_timestamp = has_timestamp && info.has_timestamp;
    rep.rows_read += info.rows;
  }
  for (size_t f = 0; f < files.size(); ++f) {
    const FileInfo& t = files[f];
    const Format fmt_read = t.layout.options.format;
    const std::string csv_hint = fmt_read == Format::Csv ? " (set the rating column)" : "";
    if (options.label_threshold && !t.has_rating)
      throw AgreedError(t.path + ": field rating: a label threshold (label = rating > " + fmt(*options.label_threshold) +
                        ") needs a rating column, but this " + format_name(fmt_read) + " input has none" + csv_hint);
    if (options.rating_range && !t.has_rating)
      throw AgreedError(t.path + ": field rating: a rating range needs a rating column, but this input has none");
    if (options.rating_range) {
      FirstError bad;
      for (const Mine& m : mine) {
        if (m.file != f || m.bad < 0 || bad.key != kNoError) continue;
        int64_t row = m.bad;  // within the file
        for (uint64_t k = piece_base[f]; k < piece_base[f] + m.piece; ++k) row += piece_rows[k];
        bad.note(static_cast<uint64_t>(row), t.path + ": data row " + std::to_string(row + 1) + ": field rating: " +
                                                 fmt(m.bad_value) + " is outside the rating range [" +
                                                 fmt(options.rating_range->first) + ", " +
                                                 fmt(options.rating_range->second) + "]");
      }
      agree_first(comm, bad.key, bad.message);
    }
    if (options.rating_threshold && !t.has_rating)
      throw AgreedError(t.path + ": a rating threshold needs a rating column, but this " + format_name(fmt_read) +
                        " input has none" + csv_hint);
    if (options.split == SplitMode::LeaveOneOut && !t.has_timestamp)
      throw AgreedError(t.path + ": the leave-one-out split needs a timestamp column, but this " + format_name(fmt_read) +
                        " input has none" + (fmt_read == Format::Csv ? " (set the timestamp column)" : ""));
  }
  // Each split's table is named by its files, as prepare() names it.
  std::string table_path[3];
  for (const FileInfo& info : files)
    table_path[info.slot] += (table_path[info.slot].empty() ? "" : " + ") + info.path;

  phase("read");

  // 2. Provisional ids.
  std::vector<std::string> owned_users, owned_items;
  std::vector<int64_t> user_bases, item_bases;
  const std::vector<int64_t> prov_user = provisional_ids(comm, list(users), owned_users, user_bases);
  const std::vector<int64_t> prov_item = provisional_ids(comm, list(items), owned_items, item_bases);
  const std::vector<int64_t> local_user_rows = std::move(user_rows);
  users = IdDict{};
  items = IdDict{};
  const int64_t user_base = user_bases[me], num_owned_users = static_cast<int64_t>(owned_users.size());
  const int64_t num_prov_items = item_bases[n];
  auto owner_of = [&](int64_t prov) {
    return static_cast<int>(std::upper_bound(user_bases.begin(), user_bases.end(), prov) - user_bases.begin()) - 1;
  };
  phase("ids");

  // 3. Rows to their user's rank, in buckets of users (their row counts sent ahead), each bucket
  // then grouped by user in input order (by position), filtered by threshold and dedup.
  // Rows of each owned user.
  std::vector<int64_t> user_count = sum_at_owners(comm, user_base, num_owned_users, [&](auto emit) {
    for (size_t u = 0; u < prov_user.size(); ++u) emit(owner_of(prov_user[u]), prov_user[u], local_user_rows[u]);
  });
  Spill<Row> grouped(sz.dir);
  std::vector<int64_t> item_count(num_prov_items, 0);
  int64_t kept_slot0 = 0, after_threshold = 0;
  {
    Buckets buckets(user_count, sz.bucket_rows);
    Spill<Rec> owned(sz.dir);
    Buf<Rec> scratch;
    stream_rows(
        comm, read, sz.round_rows,
        [&](Rec& r) {
          r.user = narrow(prov_user[r.user], "users");
          r.item = narrow(prov_item[r.item], "items");
          return owner_of(r.user);
        },
        [&](const Rec* got, size_t m) {
          buckets.put(owned, got, m, [&](const Rec& r) { return int64_t{r.user} - user_base; }, scratch);
        });
    read = Spill<Rec>();
    std::fill(user_count.begin(), user_count.end(), 0);
    // Per user (rows grouped), the first row of each (item, split): the user's id stamps the
    // items it has seen.
    std::vector<int32_t> seen(options.dedup ? static_cast<size_t>(num_prov_items) * (pre ? 3 : 1) : 0, -1);
    Appender<Row> out{grouped};
    Buf<Rec> rows;
    for (size_t b = 0; b < buckets.count(); ++b) {
      buckets.load(owned, b, [&](const Rec& r) { return int64_t{r.user} - user_base; }, rows, scratch);
      for (size_t i = 0; i < rows.size();) {
        size_t j = i + 1;
        bool ordered = true;
        for (; j < rows.size() && rows[j].user == rows[i].user; ++j) ordered = ordered && rows[j].pos > rows[j - 1].pos;
        if (!ordered)
          std::sort(rows.begin() + static_cast<std::ptrdiff_t>(i), rows.begin() + static_cast<std::ptrdiff_t>(j),
                    [](const Rec& x, const Rec& y) { return x.pos < y.pos; });
        for (size_t k = i; k < j; ++k) {
          const Rec& r = rows[k];
          if (options.rating_threshold && !(r.rating >= *options.rating_threshold)) continue;
          ++after_threshold;
          kept_slot0 += r.slot == 0;
          if (options.dedup) {
            int32_t& stamp = seen[static_cast<size_t>(r.item) * (pre ? 3 : 1) + static_cast<size_t>(r.slot)];
            if (stamp == r.user) continue;
            stamp = r.user;
          }
          ++user_count[r.user - user_base];
          ++item_count[r.item];
          out.add({r.user, r.item, r.rating, r.slot, r.timestamp});
        }
        i = j;
      }
    }
    out.flush();
  }
  phase("exchange");

  // 4. Filters: the threshold's and dedup's results, then k-core (item counts summed over the ranks).
  if (options.rating_threshold && global_sum(comm, kept_slot0) == 0)
    throw AgreedError(table_path[0] + ": no rows left after the rating threshold (kept rating >= " +
                      fmt(*options.rating_threshold) + ")");
  rep.after_threshold = global_sum(comm, after_threshold);
  rep.after_dedup = global_sum(comm, static_cast<int64_t>(grouped.size()));
  comm.allreduce_sum(item_count.data(), item_count.size());
  if (options.user_core > 1 || options.item_core > 1) {
    std::vector<int64_t> next_users(num_owned_users), next_items(num_prov_items);
    std::vector<Row> block;
    for (;;) {
      // In place: the kept rows are written at or before where they were read.
      std::fill(next_users.begin(), next_users.end(), 0);
      std::fill(next_items.begin(), next_items.end(), 0);
      int64_t slot0 = 0;
      size_t w = 0;
      const size_t before = grouped.size();
      for (size_t at = 0; at < before; at += sz.bucket_rows) {
        grouped.read(at, std::min(sz.bucket_rows, before - at), block);
        size_t kept = 0;
        for (const Row& r : block)
          if (user_count[r.user - user_base] >= options.user_core && item_count[r.item] >= options.item_core) {
            block[kept++] = r;
            ++next_users[r.user - user_base];
            ++next_items[r.item];
            slot0 += r.slot == 0;
          }
        grouped.write(w, block.data(), kept);
        w += kept;
      }
      grouped.truncate(w);
      user_count.swap(next_users);
      item_count.swap(next_items);
      comm.allreduce_sum(item_count.data(), item_count.size());
      const int64_t removed = global_sum(comm, static_cast<int64_t>(before - w));
      kept_slot0 = slot0;
      if (removed == 0) break;
      ++rep.kcore_rounds;
    }
    if (global_sum(comm, kept_slot0) == 0)
      throw AgreedError(table_path[0] + ": no rows left after k-core filtering (user_core=" +
                        std::to_string(options.user_core) + ", item_core=" + std::to_string(options.item_core) + ")");
  }
  rep.after_kcore = global_sum(comm, static_cast<int64_t>(grouped.size()));
  phase("filter");

  // 5. Dense ids over the rows that remain.
  PreparedShard out;
  out.has_rating = has_rating;
  out.has_timestamp = has_timestamp;
  std::vector<int64_t> user_dense(num_owned_users, -1);
  {
    std::vector<const std::string*> mine_ids;
    std::vector<int64_t> which;
    for (int64_t u = 0; u < num_owned_users; ++u)
      if (user_count[u] > 0) {
        mine_ids.push_back(&owned_users[u]);
        which.push_back(u);
      }
    const auto dense = dense_order(comm, mine_ids, out.user_raw, out.user_begin, out.num_users);
    for (size_t j = 0; j < which.size(); ++j) user_dense[which[j]] = dense[j];
  }
  owned_users = {};
  std::vector<int64_t> item_dense;  // provisional -> dense, every item
  {
    const int64_t base = item_bases[me];
    std::vector<const std::string*> mine_ids;
    std::vector<int64_t> which;
    for (int64_t i = 0; i < static_cast<int64_t>(owned_items.size()); ++i)
      if (item_count[base + i] > 0) {
        mine_ids.push_back(&owned_items[i]);
        which.push_back(i);
      }
    const auto dense = dense_order(comm, mine_ids, out.item_raw, out.item_begin, out.num_items);
    std::vector<int64_t> part(owned_items.size(), -1);
    for (size_t j = 0; j < which.size(); ++j) part[which[j]] = dense[j];
    owned_items = {};
    const auto all = dist::allgather(comm, part);
    item_dense.reserve(num_prov_items);
    for (const auto& v : all) item_dense.insert(item_dense.end(), v.begin(), v.end());
  }
  item_count = {};
  // Rows to the rank of their user's dense block (a user's rows come from one rank, in order),
  // in buckets of users as before.
  const int64_t num_block = static_cast<int64_t>(out.user_raw.size());
  std::vector<int64_t> ends(n);
  {
    std::vector<uint64_t> begins(n), sizes(n);
    comm.allgather_u64(static_cast<uint64_t>(out.user_begin), begins.data());
    comm.allgather_u64(static_cast<uint64_t>(num_block), sizes.data());
    for (int k = 0; k < n; ++k) ends[k] = static_cast<int64_t>(begins[k] + sizes[k]);
  }
  auto block_of = [&](int64_t dense) {
    return static_cast<int>(std::upper_bound(ends.begin(), ends.end(), dense) - ends.begin());
  };
  const std::vector<int64_t> block_count = sum_at_owners(comm, out.user_begin, num_block, [&](auto emit) {
    for (int64_t u = 0; u < num_owned_users; ++u)
      if (user_count[u] > 0) emit(block_of(user_dense[u]), user_dense[u], user_count[u]);
  });
  user_count = {};
  Buckets buckets(block_count, sz.bucket_rows);
  Spill<Row> dense(sz.dir);
  {
    Buf<Row> scratch;
    stream_rows(
        comm, grouped, sz.round_rows,
        [&](Row& r) {
          r.user = narrow(user_dense[r.user - user_base], "users");
          r.item = narrow(item_dense[r.item], "items");
          return block_of(r.user);
        },
        [&](const Row* got, size_t m) {
          buckets.put(dense, got, m, [&](const Row& r) { return int64_t{r.user} - out.user_begin; }, scratch);
        });
  }
  grouped = Spill<Row>();
  user_dense = {};
  item_dense = {};
  phase("dense ids");

  // 6. Split, per user, bucket by bucket; each split's rows go to its store in user order.
  out.parts = std::make_shared<PreparedShard::Parts>(sz.dir);
  for (auto& c : out.parts->user_rows) c.assign(num_block, 0);
  {
    Appender<Row> dest[3] = {Appender<Row>(out.parts->rows[0]), Appender<Row>(out.parts->rows[1]), Appender<Row>(out.parts->rows[2])};
    auto visit = [&](int part, const Row& r) {
      dest[part].add(r);
      ++out.parts->user_rows[part][r.user - out.user_begin];
      if (options.label_threshold && has_rating) out.positives[part] += r.rating > *options.label_threshold;
    };
    const RatioSplit ratio(options.ratios, options.seed);
    std::vector<int> part;
    std::vector<size_t> order;
    std::vector<double> ts;
    Buf<Row> rows, scratch;
    for (size_t b = 0; b < buckets.count(); ++b) {
      buckets.load(dense, b, [&](const Row& r) { return int64_t{r.user} - out.user_begin; }, rows, scratch);
      if (pre) {
        for (const Row& r : rows) visit(r.slot, r);
        continue;
      }
      for (size_t i = 0; i < rows.size();) {
        size_t j = i;
        while (j < rows.size() && rows[j].user == rows[i].user) ++j;
        const size_t m = j - i;
        part.resize(m);
        if (options.split == SplitMode::Ratio) {
          ratio.parts(rows[i].user, static_cast<int64_t>(m), part.data());
          for (size_t k = 0; k < m; ++k) visit(part[k], rows[i + k]);
        } else {
          ts.resize(m);
          for (size_t k = 0; k < m; ++k) ts[k] = rows[i + k].timestamp;
          loo_parts(ts.data(), m, order, part.data());
          for (size_t k = 0; k < m; ++k) visit(part[k], rows[i + order[k]]);
        }
        i = j;
      }
    }
    for (auto& d : dest) d.flush();
  }
  if (options.label_threshold) out.label_threshold = *options.label_threshold;
  phase("split");
  if (report) *report = rep;
  return out;
}

PreparedDataset gather_shards(dist::Comm& comm, const PreparedShard& shard) {
  PreparedDataset d;
  for (int kind = 0; kind < 2; ++kind) {
    const auto& mine = kind == 0 ? shard.user_raw : shard.item_raw;
    std::vector<std::vector<const std::string*>> send(comm.size());
    for (int k = 0; k < comm.size(); ++k)
      for (const std::string& x : mine) send[k].push_back(&x);
    auto got = exchange_strings(comm, send);
    auto& out = kind == 0 ? d.user_raw : d.item_raw;
    for (auto& v : got)
      for (auto& x : v) out.push_back(std::move(x));
  }
  Interactions* dest[3] = {&d.train, &d.valid, &d.test};
  for (int s = 0; s < 3; ++s) {
    const Interactions part = shard.split(s);
    auto cat = [&](const auto& v, auto& out) {
      for (const auto& x : dist::allgather(comm, v)) out.insert(out.end(), x.begin(), x.end());
    };
    cat(part.user, dest[s]->user);
    cat(part.item, dest[s]->item);
    cat(part.rating, dest[s]->rating);
    cat(part.timestamp, dest[s]->timestamp);
  }
  d.label_threshold = shard.label_threshold;
  return d;
}

namespace {

// The fingerprint of dataset_fingerprint (io/dataset.cc), from the shards: rank 0 hashes what the
// ranks send it in turn.
void hash_u64(Fnv64& h, uint64_t v) {
  unsigned char b[8];
  for (int k = 0; k < 8; ++k) b[k] = static_cast<unsigned char>(v >> (8 * k));
  h.add(b, 8);
}

// Calls f(k, values of rank k) on rank 0 for k = 0 .. n-1, each rank's values sent in blocks of
// at most `block` entries: rank 0 holds one block at a time. `chunk(j)` on rank k: its j-th block.
template <class T, class Get, class Use>
void funnel(dist::Comm& comm, size_t count, size_t block, Get get, Use use) {
  const int n = comm.size(), me = comm.rank();
  std::vector<uint64_t> counts(n);
  comm.allgather_u64(count, counts.data());
  std::vector<T> buf;
  for (int k = 0; k < n; ++k)
    for (uint64_t at = 0; at < counts[k]; at += block) {
      const size_t m = static_cast<size_t>(std::min<uint64_t>(block, counts[k] - at));
      if (k == 0) {
        if (me == 0) {
          get(at, m, buf);
          use(buf);
        }
        continue;
      }
      std::vector<std::vector<T>> send(n);
      if (me == k) get(at, m, send[0]);
      auto got = dist::all_to_all(comm, send);
      if (me == 0) use(got[k]);
    }
}

}  // namespace

std::string write_dataset_parallel(dist::Comm& comm, const PreparedShard& shard, const std::string& path,
                                   const std::string& source,
                                   const std::function<void(H5File&, const std::vector<std::string>& item_raw)>& extra) {
  const int me = comm.rank();
  // Whether the data has ratings / timestamps, as write_dataset decides it: train has them.
  int64_t flags[2] = {shard.rows(0) > 0 && shard.has_rating, shard.rows(0) > 0 && shard.has_timestamp};
  comm.allreduce_sum(flags, 2);
  const bool has_rating = flags[0] > 0, has_timestamp = flags[1] > 0;
  constexpr size_t kBlockRows = 1 << 20;
  std::unique_ptr<DatasetWriter> w;
  Fnv64 fp;
  std::string error;  // rank 0's failure, agreed at the end
  auto guarded = [&](const std::function<void()>& fn) {
    if (me != 0 || !error.empty()) return;
    try {
      fn();
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "unknown error";
    }
  };
  guarded([&] {
    w = std::make_unique<DatasetWriter>(path, shard.num_users, shard.num_items, has_rating, source, has_timestamp);
  });
  hash_u64(fp, static_cast<uint64_t>(shard.num_users));
  hash_u64(fp, static_cast<uint64_t>(shard.num_items));
  const size_t num_block = shard.user_raw.size();
  auto user_rows = [&](int s) -> std::vector<int64_t> {
    if (shard.parts) return shard.parts->user_rows[s];
    return std::vector<int64_t>(num_block, 0);
  };
  // The fingerprint's train indptr: every user's row count, in user order.
  {
    const std::vector<int64_t> counts = user_rows(0);
    int64_t at = 0;
    hash_u64(fp, 0);
    funnel<int64_t>(
        comm, counts.size(), kBlockRows,
        [&](uint64_t from, size_t m, std::vector<int64_t>& out) { out.assign(counts.begin() + from, counts.begin() + from + m); },
        [&](const std::vector<int64_t>& v) {
          for (int64_t c : v) hash_u64(fp, static_cast<uint64_t>(at += c));
        });
  }
  struct Wire {
    int64_t user, item;
    double timestamp;
    float rating;
  };
  for (int s = 0; s < 3; ++s) {
    // Blocks end at a user's last row, so rank 0 sees whole users: cut points first.
    std::vector<size_t> user_end;  // rows up to each user's last
    {
      size_t at = 0;
      for (int64_t c : user_rows(s)) user_end.push_back(at += static_cast<size_t>(c));
    }
    const size_t size = static_cast<size_t>(shard.rows(s));
    std::vector<size_t> cuts{0};
    for (size_t i = 0; i < size;) {
      size_t j = std::min(size, i + kBlockRows);
      if (j < size) j = *std::lower_bound(user_end.begin(), user_end.end(), j);  // the end of row j-1's user
      cuts.push_back(j);
      i = j;
    }
    std::vector<Row> rows;
    std::vector<int32_t> items;
    std::vector<float> ratings;
    std::vector<double> times;
    funnel<Wire>(
        comm, cuts.size() - 1, 1,
        [&](uint64_t j, size_t, std::vector<Wire>& out) {
          shard.parts->rows[s].read(cuts[j], cuts[j + 1] - cuts[j], rows);
          out.clear();
          for (const Row& r : rows) out.push_back({r.user, r.item, has_timestamp ? r.timestamp : 0.0, has_rating ? r.rating : 0.0f});
        },
        [&](const std::vector<Wire>& v) {
          guarded([&] {
            for (size_t i = 0; i < v.size();) {
              size_t j = i;
              items.clear();
              ratings.clear();
              times.clear();
              while (j < v.size() && v[j].user == v[i].user) {
                if (v[j].item < 0 || v[j].item >= shard.num_items)
                  fail(std::string("prepared ") + kSplitNames[s] + " split: item id " + std::to_string(v[j].item) +
                       " outside the table");
                items.push_back(static_cast<int32_t>(v[j].item));
                if (has_rating) ratings.push_back(v[j].rating);
                if (has_timestamp) times.push_back(v[j].timestamp);
                ++j;
              }
              w->add_user(s, v[i].user, items, ratings, times);
              i = j;
            }
          });
          if (s == 0)
            for (const Wire& r : v) hash_u64(fp, static_cast<uint64_t>(r.item));
        });
  }
  // The mappings (rank 0 holds them whole: the writer takes them at once).
  std::vector<std::string> user_raw, item_raw;
  for (int kind = 0; kind < 2; ++kind) {
    const auto& mine = kind == 0 ? shard.user_raw : shard.item_raw;
    std::vector<std::vector<const std::string*>> send(comm.size());
    if (me != 0)
      for (const std::string& x : mine) send[0].push_back(&x);
    auto got = exchange_strings(comm, send);
    if (me != 0) continue;
    auto& out = kind == 0 ? user_raw : item_raw;
    out = mine;
    for (int k = 1; k < comm.size(); ++k)
      for (auto& x : got[k]) out.push_back(std::move(x));
  }
  for (const auto* ids : {&user_raw, &item_raw})
    for (const std::string& id : *ids) {
      hash_u64(fp, id.size());
      fp.add(id.data(), id.size());
    }
  guarded([&] {
    w->write_mapping(user_raw, item_raw);
    user_raw = {};
    if (!std::isnan(shard.label_threshold)) {
      if (!has_rating) fail("a labeled dataset (label threshold) needs ratings");
      w->file().write_attr<double>("/", "label_threshold", shard.label_threshold);
    }
    w->file().write_attr_str("/", "fingerprint", fp.hex());
    if (extra) extra(w->file(), item_raw);
    w->finish();
  });
  w.reset();
  uint64_t len = error.size();
  comm.broadcast(&len, sizeof len, 0);
  if (len) {
    error.resize(len);
    comm.broadcast(error.data(), len, 0);
    throw AgreedError(error);
  }
  std::string hex = fp.hex();
  comm.broadcast(hex.data(), hex.size(), 0);
  return hex;
}

}  // namespace shardrec::io
