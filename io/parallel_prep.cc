#include "io/parallel_prep.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
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

struct PieceRows {
  size_t file = 0;
  int slot = 0;
  uint64_t piece = 0;  // index within the file
  int64_t row_offset = 0;  // rows of the file's earlier pieces (set after the count)
  RawInteractions raw;
};

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
  template <class F>
  void scan(uint64_t begin, uint64_t end, F&& f) {
    if (begin >= end) return;
    if (std::fseek(f_, static_cast<long>(begin), SEEK_SET) != 0)
      fail(path_ + ": cannot seek to byte " + std::to_string(begin) + ": " + std::strerror(errno));
    buf_.resize(1 << 20);
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

// Cuts a splittable file into `pieces` (> 1) pieces at record boundaries: returns this rank's
// [begin, end) and first line (rank >= pieces: an empty range). Collective. Also hashes this
// rank's 1 MiB blocks (those starting in its nominal range) into `blocks`.
struct Cut {
  uint64_t begin = 0, end = 0;
  int64_t first_line = 1;
};

Cut cut_file(dist::Comm& comm, const FileLayout& l, int pieces, std::vector<uint64_t>& blocks) {
  const int n = comm.size(), r = comm.rank();
  const bool csv = l.options.format == Format::Csv;
  // Nominal starts: c[0] = 0, c[k] = first_record_end + k * (size - first_record_end) / pieces.
  std::vector<uint64_t> c(pieces + 1);
  for (int k = 1; k < pieces; ++k)
    c[k] = l.first_record_end + static_cast<uint64_t>(k) * (l.size - l.first_record_end) / pieces;
  c[0] = 0;
  c[pieces] = l.size;
  RawFile f(l.path);
  uint64_t quotes = 0, newlines = 0;
  if (r < pieces)
    f.scan(c[r], c[r + 1], [&](const char* p, size_t m) {
      newlines += static_cast<uint64_t>(std::count(p, p + m, '\n'));
      if (csv) quotes += static_cast<uint64_t>(std::count(p, p + m, '"'));
      return true;
    });
  // The checksum's blocks: those whose start lies in [c[r], c[r + 1]).
  if (r < pieces) {
    const uint64_t B = BlockHash::kBlock;
    const uint64_t b0 = (c[r] + B - 1) / B, b1 = std::min((c[r + 1] + B - 1) / B, (l.size + B - 1) / B);
    for (uint64_t b = b0; b < b1; ++b) {
      Fnv64 h;
      f.scan(b * B, std::min(l.size, (b + 1) * B), [&](const char* p, size_t m) {
        h.add(p, m);
        return true;
      });
      blocks.push_back(h.h);
    }
  }
  std::vector<uint64_t> q(n), nl(n);
  comm.allgather_u64(quotes, q.data());
  comm.allgather_u64(newlines, nl.data());
  Cut cut;
  uint64_t start = 0;  // this rank's piece start: the first record boundary at or after c[r]
  if (r == 0) {
    start = 0;
  } else if (r < pieces) {
    bool quoted = false;
    uint64_t before = 0;  // newlines before c[r]
    for (int k = 0; k < r; ++k) {
      quoted ^= (q[k] & 1) != 0;
      before += nl[k];
    }
    start = l.size;
    uint64_t at = c[r] - 1, lines = 0;
    bool scanned_first = false;
    f.scan(c[r] - 1, l.size, [&](const char* p, size_t m) {
      for (size_t i = 0; i < m; ++i, ++at) {
        const char ch = p[i];
        if (!scanned_first) {
          // The byte before c[r] (counted in the range before): a line end there outside quotes
          // (a line end does not change the state) means c[r] starts a record.
          scanned_first = true;
          if (ch == '\n' && !quoted) {
            start = at + 1;
            return false;
          }
          continue;
        }
        if (csv && ch == '"') {
          quoted = !quoted;
        } else if (ch == '\n') {
          ++lines;
          if (!quoted) {
            start = at + 1;
            return false;
          }
        }
      }
      return true;
    });
    // Lines before start: those before c[r], plus those from c[r] to start.
    cut.first_line = 1 + static_cast<int64_t>(before + lines);
  }
  std::vector<uint64_t> starts(n);
  comm.allgather_u64(r < pieces ? start : l.size, starts.data());
  if (r < pieces) {
    cut.begin = starts[r];
    cut.end = r + 1 < pieces ? std::max(starts[r], starts[r + 1]) : l.size;
    if (r > 0 && cut.begin < l.first_record_end) cut.begin = l.first_record_end;
    cut.end = std::max(cut.end, cut.begin);
  } else {
    cut.begin = cut.end = l.size;
  }
  return cut;
}

// ---- Ids ----------------------------------------------------------------------------------------------

// Distinct raw ids of this rank's pieces, and per piece its local ids -> rank ids.
struct LocalIds {
  std::vector<const std::string*> names;                 // rank id -> raw id (owned by the pieces)
  std::vector<std::vector<int64_t>> of_piece;           // piece, piece-local id -> rank id
};

LocalIds local_ids(const std::vector<PieceRows>& pieces, bool users) {
  LocalIds out;
  std::unordered_map<std::string_view, int64_t> index;
  for (const PieceRows& p : pieces) {
    const auto& ids = users ? p.raw.user_ids : p.raw.item_ids;
    auto& map = out.of_piece.emplace_back(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      auto [it, added] = index.try_emplace(std::string_view(ids[i]), static_cast<int64_t>(out.names.size()));
      if (added) out.names.push_back(&ids[i]);
      map[i] = it->second;
    }
  }
  return out;
}

// Provisional ids: each distinct raw id is numbered by the rank its hash picks, in the order the
// ranks send them. Returns rank id -> provisional id; `owned` gets the raw ids this rank numbered
// (provisional ids [bases[rank], bases[rank] + owned.size())), `bases` every rank's base (and the
// total last).
std::vector<int64_t> provisional_ids(dist::Comm& comm, const LocalIds& local, std::vector<std::string>& owned,
                                     std::vector<int64_t>& bases) {
  const int n = comm.size();
  std::vector<std::vector<const std::string*>> send(n);
  std::vector<int> dest(local.names.size());
  for (size_t i = 0; i < local.names.size(); ++i) {
    Fnv64 h;
    h.add(local.names[i]->data(), local.names[i]->size());
    dest[i] = static_cast<int>(h.h % static_cast<uint64_t>(n));
    send[dest[i]].push_back(local.names[i]);
  }
  auto got = exchange_strings(comm, send);
  std::deque<std::string> store;  // elements stay in place: the index's views hold
  std::unordered_map<std::string_view, int64_t> index;
  std::vector<std::vector<int64_t>> reply(n);
  for (int k = 0; k < n; ++k) {
    for (std::string& s : got[k]) {
      auto it = index.find(s);
      if (it == index.end()) {
        store.push_back(std::move(s));
        it = index.emplace(std::string_view(store.back()), static_cast<int64_t>(store.size() - 1)).first;
      }
      reply[k].push_back(it->second);
    }
    got[k] = {};
  }
  index.clear();
  owned.assign(std::make_move_iterator(store.begin()), std::make_move_iterator(store.end()));
  store.clear();
  std::vector<uint64_t> counts(n);
  comm.allgather_u64(owned.size(), counts.data());
  bases.assign(n + 1, 0);
  for (int k = 0; k < n; ++k) bases[k + 1] = bases[k] + static_cast<int64_t>(counts[k]);
  const auto back = dist::all_to_all(comm, reply);
  std::vector<int64_t> out(local.names.size());
  std::vector<size_t> next(n, 0);
  for (size_t i = 0; i < local.names.size(); ++i) out[i] = bases[dest[i]] + back[dest[i]][next[dest[i]]++];
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

// One interaction on its way: 24 bytes (ids below 2^31, checked where they are made).
struct Row {
  int32_t user, item;
  float rating;
  int32_t slot;  // the split it came in (presplit), else 0
  double timestamp;
};

// Row buffers leave their pages untouched until rows are written (std::vector<Row>(n) would zero
// them all at once): a buffer being filled is resident only as far as it is filled, so the pieces
// freed while it fills are not resident beside a whole zeroed copy.
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
using Rows = std::vector<Row, UninitAlloc<Row>>;

int32_t narrow(int64_t id, const char* what) {
  if (id > INT32_MAX) fail(std::string("prep: more than 2^31 distinct ") + what + " is not supported");
  return static_cast<int32_t>(id);
}

// An all-to-all of rows in which send(k, out) appends the rows for rank k in order (called twice:
// to count, then to fill; `out` is null when counting, `count` gets the rows). Returns what the
// ranks sent, in source-rank order. One copy each way: the send buffer, then the received one.
template <class Fill>
Rows exchange_rows(dist::Comm& comm, Fill fill, std::vector<uint64_t>* from = nullptr) {
  const int n = comm.size();
  std::vector<uint64_t> scount(n, 0), rcount(n);
  fill(scount.data(), nullptr, nullptr);
  std::vector<size_t> sb(n), sd(n), rb(n), rd(n);
  size_t stotal = 0, rtotal = 0;
  for (int k = 0; k < n; ++k) {
    sd[k] = stotal;
    stotal += scount[k];
  }
  Rows sbuf(stotal);
  std::vector<size_t> at(sd);
  fill(nullptr, sbuf.data(), at.data());
  comm.alltoall_u64(scount.data(), rcount.data());
  for (int k = 0; k < n; ++k) {
    rd[k] = rtotal * sizeof(Row);
    rb[k] = rcount[k] * sizeof(Row);
    rtotal += rcount[k];
    sb[k] = scount[k] * sizeof(Row);
    sd[k] *= sizeof(Row);
  }
  if (from) *from = rcount;
  if (n == 1) return sbuf;  // nothing to move
  Rows rbuf(rtotal);
  // MPI counts bytes in ints: more than 1 GiB a rank goes in rounds of 64 MiB, each a slice of
  // every destination's rows through round buffers (small, so that they add little to the peak).
  // (SHARDREC_PREP_ROUND_BYTES: both limits smaller, for tests.)
  double direct_bytes = 1 << 30, round_bytes = 64 << 20;
  if (const char* e = std::getenv("SHARDREC_PREP_ROUND_BYTES")) direct_bytes = round_bytes = std::max(1.0, std::atof(e));
  double bytes = static_cast<double>(std::max(stotal, rtotal) * sizeof(Row));
  comm.allreduce_max(&bytes, 1);
  const double rounds = bytes <= direct_bytes ? 1 : std::ceil(bytes / round_bytes);
  if (rounds <= 1) {
    comm.alltoallv(sbuf.data(), sb.data(), sd.data(), rbuf.data(), rb.data(), rd.data());
    return rbuf;
  }
  const auto R = static_cast<uint64_t>(rounds);
  Rows so, ro;
  for (uint64_t j = 0; j < R; ++j) {
    size_t st = 0, rt = 0;
    for (int k = 0; k < n; ++k) {
      const uint64_t s0 = scount[k] * j / R, s1 = scount[k] * (j + 1) / R;
      const uint64_t r0 = rcount[k] * j / R, r1 = rcount[k] * (j + 1) / R;
      sb[k] = (s1 - s0) * sizeof(Row);
      sd[k] = st * sizeof(Row);
      rb[k] = (r1 - r0) * sizeof(Row);
      rd[k] = rt * sizeof(Row);
      st += s1 - s0;
      rt += r1 - r0;
    }
    so.resize(st);
    ro.resize(rt);
    size_t at_s = 0, base_s = 0;
    for (int k = 0; k < n; ++k) {
      const uint64_t s0 = scount[k] * j / R, s1 = scount[k] * (j + 1) / R;
      std::copy(sbuf.begin() + static_cast<std::ptrdiff_t>(base_s + s0), sbuf.begin() + static_cast<std::ptrdiff_t>(base_s + s1),
                so.begin() + static_cast<std::ptrdiff_t>(at_s));
      at_s += s1 - s0;
      base_s += scount[k];
    }
    comm.alltoallv(so.data(), sb.data(), sd.data(), ro.data(), rb.data(), rd.data());
    size_t at_r = 0, base_r = 0;
    for (int k = 0; k < n; ++k) {
      const uint64_t r0 = rcount[k] * j / R, r1 = rcount[k] * (j + 1) / R;
      std::copy(ro.begin() + static_cast<std::ptrdiff_t>(at_r), ro.begin() + static_cast<std::ptrdiff_t>(at_r + r1 - r0),
                rbuf.begin() + static_cast<std::ptrdiff_t>(base_r + r0));
      at_r += r1 - r0;
      base_r += rcount[k];
    }
  }
  return rbuf;
}

// Rows to the ranks dest(row) picks, keeping their order per source.
template <class Dest>
Rows move_rows(dist::Comm& comm, Rows& rows, Dest dest) {
  return exchange_rows(comm, [&](uint64_t* count, Row* buf, size_t* at) {
    for (const Row& r : rows) {
      const int d = dest(r);
      if (count) ++count[d];
      else buf[at[d]++] = r;
    }
    if (buf) rows = {};  // copied into the send buffer: its memory goes back before the receive
  });
}

// Stable counting sort of rows by user - first (users in [first, first + count)).
void group_rows(Rows& rows, int64_t first, int64_t count) {
  std::vector<size_t> at(count + 1, 0);
  for (const Row& r : rows) ++at[r.user - first + 1];
  std::partial_sum(at.begin(), at.end(), at.begin());
  Rows out(rows.size());
  for (const Row& r : rows) out[at[r.user - first]++] = r;
  rows.swap(out);
}

// Keeps the rows keep(row) accepts, in order; keep sees the rows in order.
template <class Keep>
void filter_rows(Rows& rows, Keep keep) {
  size_t w = 0;
  for (size_t i = 0; i < rows.size(); ++i)
    if (keep(rows[i])) rows[w++] = rows[i];
  rows.resize(w);
}

int64_t global_sum(dist::Comm& comm, int64_t v) {
  comm.allreduce_sum(&v, 1);
  return v;
}

void append(Interactions& t, const Row& r, bool rated, bool timed) {
  t.user.push_back(r.user);
  t.item.push_back(r.item);
  if (rated) t.rating.push_back(r.rating);
  if (timed) t.timestamp.push_back(r.timestamp);
}

}  // namespace

void add_phase(dist::Comm& comm, PrepReport& rep, const char* name, double seconds) {
  double peak = peak_rss_mib();
  comm.allreduce_max(&peak, 1);
  rep.phases.push_back({name, seconds, peak});
}

PreparedShard prepare_parallel(dist::Comm& comm, const PrepOptions& options, PrepReport* report,
                               uint64_t piece_bytes) {
  const int n = comm.size(), me = comm.rank();
  validate(options);
  const bool pre = options.split == SplitMode::Presplit;
  const auto slots = input_slots(options);
  PrepReport rep;
  // Phase marks: collective (the fullest rank's peak), at points every rank passes.
  auto mark_time = std::chrono::steady_clock::now();
  auto phase = [&](const char* name) {
    const auto now = std::chrono::steady_clock::now();
    add_phase(comm, rep, name, std::chrono::duration<double>(now - mark_time).count());
    mark_time = now;
  };

  // 1. Read: every rank plans every file the same way; errors are ranked by input order.
  std::vector<FileInfo> files(slots.size());
  std::vector<PieceRows> pieces;
  FirstError err;
  int whole_turn = 0;
  for (size_t f = 0; f < slots.size(); ++f) {
    FileInfo& info = files[f];
    info.path = slots[f].first;
    info.slot = slots[f].second;
    try {
      info.layout = file_layout(info.path, options);
      info.layout_ok = true;
    } catch (const std::exception& e) {
      err.note(error_key(f, 0), e.what());
      continue;
    }
    const FileLayout& l = info.layout;
    const uint64_t body = l.size - std::min(l.size, l.first_record_end);
    const int cuts = l.splittable ? static_cast<int>(std::clamp<uint64_t>(body / std::max<uint64_t>(piece_bytes, 1), 1, n)) : 1;
    if (cuts > 1) {
      std::vector<uint64_t> blocks;
      Cut cut;
      try {
        cut = cut_file(comm, l, cuts, blocks);
      } catch (const std::exception& e) {
        err.note(error_key(f, static_cast<uint64_t>(me)), e.what());
      }
      // The checksum: every rank's blocks in order.
      const auto all = dist::allgather(comm, blocks);
      std::vector<uint64_t> flat;
      for (const auto& v : all) flat.insert(flat.end(), v.begin(), v.end());
      info.hash = BlockHash::combine(flat.data(), flat.size());
      if (me < cuts && cut.end > cut.begin) {
        try {
          pieces.push_back({f, info.slot, static_cast<uint64_t>(me), 0, parse_piece(l, cut.begin, cut.end, cut.first_line)});
        } catch (const std::exception& e) {
          err.note(error_key(f, static_cast<uint64_t>(me)), e.what());
        }
      }
    } else {
      const int reader = whole_turn++ % n;
      uint64_t hash = 0;
      if (reader == me) {
        try {
          pieces.push_back({f, info.slot, 0, 0, parse_whole(l)});
          hash = pieces.back().raw.file_hash;
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
  {
    std::vector<int64_t> rows(slots.size() * n, 0), flags(slots.size() * 2, 0);
    for (const PieceRows& p : pieces) {
      rows[p.file * n + p.piece] = static_cast<int64_t>(p.raw.size());
      if (p.piece == 0) {
        flags[2 * p.file] = p.raw.has_rating;
        flags[2 * p.file + 1] = p.raw.has_timestamp;
      }
    }
    comm.allreduce_sum(rows.data(), rows.size());
    comm.allreduce_sum(flags.data(), flags.size());
    for (size_t f = 0; f < slots.size(); ++f) {
      FileInfo& info = files[f];
      for (int k = 0; k < n; ++k) info.rows += rows[f * n + k];
      info.has_rating = flags[2 * f] != 0;
      info.has_timestamp = flags[2 * f + 1] != 0;
      if (info.layout_ok && info.rows == 0) err.note(error_key(f, kFileEnd), info.path + ": empty file: no interactions found");
    }
    for (PieceRows& p : pieces)
      for (uint64_t k = 0; k < p.piece; ++k) p.row_offset += rows[p.file * n + k];
  }
  agree_first(comm, err.key, err.message);
  std::sort(pieces.begin(), pieces.end(),
            [](const PieceRows& a, const PieceRows& b) { return error_key(a.file, a.piece) < error_key(b.file, b.piece); });
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
      for (const PieceRows& p : pieces) {
        if (p.file != f) continue;
        for (size_t r = 0; r < p.raw.size() && bad.key == kNoError; ++r) {
          const double v = p.raw.rating[r];
          if (!(v >= options.rating_range->first && v <= options.rating_range->second))
            bad.note(static_cast<uint64_t>(p.row_offset) + r,
                     t.path + ": data row " + std::to_string(p.row_offset + static_cast<int64_t>(r) + 1) +
                         ": field rating: " + fmt(v) + " is outside the rating range [" +
                         fmt(options.rating_range->first) + ", " + fmt(options.rating_range->second) + "]");
        }
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
  std::vector<std::vector<int64_t>> piece_user, piece_item;  // piece-local id -> provisional id
  {
    for (int kind = 0; kind < 2; ++kind) {
      const LocalIds local = local_ids(pieces, kind == 0);
      const auto prov = provisional_ids(comm, local, kind == 0 ? owned_users : owned_items,
                                        kind == 0 ? user_bases : item_bases);
      auto& out = kind == 0 ? piece_user : piece_item;
      out.resize(pieces.size());
      for (size_t p = 0; p < pieces.size(); ++p) {
        out[p].resize(local.of_piece[p].size());
        for (size_t i = 0; i < out[p].size(); ++i) out[p][i] = prov[local.of_piece[p][i]];
      }
    }
  }
  const int64_t user_base = user_bases[me], num_owned_users = static_cast<int64_t>(owned_users.size());
  const int64_t num_prov_items = item_bases[n];
  phase("ids");

  // 3. Rows to their user's rank, in input order: the pieces in order, and the sources in rank
  // order would not be input order, so each rank first sends its rows tagged with their piece.
  Rows rows;
  {
    // The rank of each user, per piece and piece-local id.
    std::vector<std::vector<int>> owner(pieces.size());
    for (size_t p = 0; p < pieces.size(); ++p) {
      owner[p].resize(piece_user[p].size());
      for (size_t i = 0; i < owner[p].size(); ++i)
        owner[p][i] = static_cast<int>(std::upper_bound(user_bases.begin(), user_bases.end(), piece_user[p][i]) -
                                       user_bases.begin()) - 1;
    }
    // Per destination, (piece key, rows) of each piece that sends it rows: the received rows are
    // put back in input order by these.
    std::vector<std::vector<uint64_t>> segs(n);
    std::vector<uint64_t> count(n);
    for (size_t p = 0; p < pieces.size(); ++p) {
      std::fill(count.begin(), count.end(), 0);
      for (int64_t u : pieces[p].raw.user) ++count[owner[p][u]];
      for (int d = 0; d < n; ++d)
        if (count[d]) {
          segs[d].push_back(error_key(pieces[p].file, pieces[p].piece));
          segs[d].push_back(count[d]);
        }
    }
    std::vector<uint64_t> from;
    Rows got = exchange_rows(
        comm,
        [&](uint64_t* cnt, Row* buf, size_t* at) {
          for (size_t p = 0; p < pieces.size(); ++p) {
            RawInteractions& raw = pieces[p].raw;
            for (size_t r = 0; r < raw.size(); ++r) {
              const int d = owner[p][raw.user[r]];
              if (cnt) {
                ++cnt[d];
                continue;
              }
              buf[at[d]++] = {narrow(piece_user[p][raw.user[r]], "users"), narrow(piece_item[p][raw.item[r]], "items"),
                              has_rating ? raw.rating[r] : 0.0f, pieces[p].slot,
                              has_timestamp ? raw.timestamp[r] : 0.0};
            }
            if (buf) raw = RawInteractions{};  // filled: its memory goes back now
          }
        },
        &from);
    pieces.clear();
    piece_user.clear();
    piece_item.clear();
    const auto got_segs = dist::all_to_all(comm, segs);
    struct Seg {
      uint64_t key;
      size_t at, count;
    };
    std::vector<Seg> all;
    size_t at = 0;
    for (int k = 0; k < n; ++k)
      for (size_t j = 0; j < got_segs[k].size(); j += 2) {
        all.push_back({got_segs[k][j], at, got_segs[k][j + 1]});
        at += got_segs[k][j + 1];
      }
    std::sort(all.begin(), all.end(), [](const Seg& a, const Seg& b) { return a.key < b.key; });
    bool in_order = true;
    for (size_t j = 1; j < all.size(); ++j) in_order = in_order && all[j].at == all[j - 1].at + all[j - 1].count;
    if (in_order) {
      rows.swap(got);
    } else {
      rows.reserve(got.size());
      for (const Seg& sg : all)
        rows.insert(rows.end(), got.begin() + static_cast<std::ptrdiff_t>(sg.at),
                    got.begin() + static_cast<std::ptrdiff_t>(sg.at + sg.count));
    }
  }
  // Each user's rows together, in input order.
  group_rows(rows, user_base, num_owned_users);
  phase("exchange");

  // 4. Filters, on each user's rows (this rank holds them all).
  auto count_of = [&](int slot) {
    int64_t c = 0;
    for (const Row& r : rows) c += r.slot == slot;
    return global_sum(comm, c);
  };
  if (options.rating_threshold) {
    filter_rows(rows, [&](const Row& r) { return r.rating >= *options.rating_threshold; });
    if (count_of(0) == 0)
      throw AgreedError(table_path[0] + ": no rows left after the rating threshold (kept rating >= " +
                        fmt(*options.rating_threshold) + ")");
  }
  rep.after_threshold = global_sum(comm, static_cast<int64_t>(rows.size()));
  if (options.dedup) {
    // Per user (rows grouped), the first row of each (item, split): the user's id stamps the items
    // it has seen.
    std::vector<int32_t> seen(static_cast<size_t>(num_prov_items) * (pre ? 3 : 1), -1);
    filter_rows(rows, [&](const Row& r) {
      int32_t& stamp = seen[static_cast<size_t>(r.item) * (pre ? 3 : 1) + static_cast<size_t>(r.slot)];
      if (stamp == r.user) return false;
      stamp = r.user;
      return true;
    });
  }
  rep.after_dedup = global_sum(comm, static_cast<int64_t>(rows.size()));
  std::vector<int64_t> item_count(num_prov_items, 0);
  auto count_items = [&] {
    std::fill(item_count.begin(), item_count.end(), 0);
    for (const Row& r : rows) ++item_count[r.item];
    comm.allreduce_sum(item_count.data(), item_count.size());
  };
  count_items();
  if (options.user_core > 1 || options.item_core > 1) {
    std::vector<int64_t> user_count(num_owned_users);
    for (;;) {
      std::fill(user_count.begin(), user_count.end(), 0);
      for (const Row& r : rows) ++user_count[r.user - user_base];
      const size_t before = rows.size();
      filter_rows(rows, [&](const Row& r) {
        return user_count[r.user - user_base] >= options.user_core && item_count[r.item] >= options.item_core;
      });
      const int64_t removed = global_sum(comm, static_cast<int64_t>(before - rows.size()));
      count_items();
      if (removed == 0) break;
      ++rep.kcore_rounds;
    }
    if (count_of(0) == 0)
      throw AgreedError(table_path[0] + ": no rows left after k-core filtering (user_core=" +
                        std::to_string(options.user_core) + ", item_core=" + std::to_string(options.item_core) + ")");
  }
  rep.after_kcore = global_sum(comm, static_cast<int64_t>(rows.size()));
  phase("filter");

  // 5. Dense ids over the rows that remain.
  PreparedShard out;
  std::vector<int64_t> user_dense(num_owned_users, -1);
  {
    std::vector<char> used(num_owned_users, 0);
    for (const Row& r : rows) used[r.user - user_base] = 1;
    std::vector<const std::string*> mine;
    std::vector<int64_t> which;
    for (int64_t u = 0; u < num_owned_users; ++u)
      if (used[u]) {
        mine.push_back(&owned_users[u]);
        which.push_back(u);
      }
    const auto dense = dense_order(comm, mine, out.user_raw, out.user_begin, out.num_users);
    for (size_t j = 0; j < which.size(); ++j) user_dense[which[j]] = dense[j];
  }
  owned_users = {};
  std::vector<int64_t> item_dense;  // provisional -> dense, every item
  {
    const int64_t base = item_bases[me];
    std::vector<const std::string*> mine;
    std::vector<int64_t> which;
    for (int64_t i = 0; i < static_cast<int64_t>(owned_items.size()); ++i)
      if (item_count[base + i] > 0) {
        mine.push_back(&owned_items[i]);
        which.push_back(i);
      }
    const auto dense = dense_order(comm, mine, out.item_raw, out.item_begin, out.num_items);
    std::vector<int64_t> part(owned_items.size(), -1);
    for (size_t j = 0; j < which.size(); ++j) part[which[j]] = dense[j];
    owned_items = {};
    const auto all = dist::allgather(comm, part);
    item_dense.reserve(num_prov_items);
    for (const auto& v : all) item_dense.insert(item_dense.end(), v.begin(), v.end());
  }
  item_count = {};
  for (Row& r : rows) {
    r.user = narrow(user_dense[r.user - user_base], "users");
    r.item = narrow(item_dense[r.item], "items");
  }
  user_dense = {};
  item_dense = {};
  // Rows to the rank of their user's dense block; a user's rows come from one rank, in order.
  {
    std::vector<uint64_t> begins(n);
    comm.allgather_u64(static_cast<uint64_t>(out.user_begin), begins.data());
    std::vector<uint64_t> sizes(n);
    comm.allgather_u64(out.user_raw.size(), sizes.data());
    std::vector<int64_t> ends(n);
    for (int k = 0; k < n; ++k) ends[k] = static_cast<int64_t>(begins[k] + sizes[k]);
    rows = move_rows(comm, rows, [&](const Row& r) {
      return static_cast<int>(std::upper_bound(ends.begin(), ends.end(), r.user) - ends.begin());
    });
    group_rows(rows, out.user_begin, static_cast<int64_t>(out.user_raw.size()));
  }

  phase("dense ids");

  // 6. Split, per user: each row's split, counted first so that the tables are allocated once at
  // their size (grown row by row, a table would hold up to twice its rows while it reallocates).
  Interactions* dest[3] = {&out.train, &out.valid, &out.test};
  auto each_part = [&](auto&& visit) {
    if (pre) {
      for (const Row& r : rows) visit(r.slot, r);
      return;
    }
    const RatioSplit ratio(options.ratios, options.seed);
    std::vector<int> part;
    std::vector<size_t> order;
    std::vector<double> ts;
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
  };
  {
    size_t sizes[3] = {0, 0, 0};
    each_part([&](int part, const Row&) { ++sizes[part]; });
    for (int k = 0; k < 3; ++k) {
      dest[k]->user.reserve(sizes[k]);
      dest[k]->item.reserve(sizes[k]);
      if (has_rating) dest[k]->rating.reserve(sizes[k]);
      if (has_timestamp) dest[k]->timestamp.reserve(sizes[k]);
    }
  }
  each_part([&](int part, const Row& r) { append(*dest[part], r, has_rating, has_timestamp); });
  rows = {};
  // A split's rows grouped by user: the appends above went user by user.
  if (options.label_threshold) out.label_threshold = *options.label_threshold;
  phase("split");
  if (report) *report = rep;
  return out;
}

PreparedDataset gather_shards(dist::Comm& comm, const PreparedShard& shard) {
  PreparedDataset d;
  const std::vector<const std::string*> none;
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
  const Interactions* parts[3] = {&shard.train, &shard.valid, &shard.test};
  Interactions* dest[3] = {&d.train, &d.valid, &d.test};
  for (int s = 0; s < 3; ++s) {
    auto cat = [&](const auto& v, auto& out) {
      for (const auto& x : dist::allgather(comm, v)) out.insert(out.end(), x.begin(), x.end());
    };
    cat(parts[s]->user, dest[s]->user);
    cat(parts[s]->item, dest[s]->item);
    cat(parts[s]->rating, dest[s]->rating);
    cat(parts[s]->timestamp, dest[s]->timestamp);
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
  // Whether the data has ratings / timestamps: the same on every rank (any rank with rows knows).
  int64_t flags[2] = {!shard.train.rating.empty(), !shard.train.timestamp.empty()};
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
  // The fingerprint's train indptr: every user's row count, in user order.
  {
    std::vector<int64_t> counts(shard.user_raw.size(), 0);
    for (int64_t u : shard.train.user) ++counts[u - shard.user_begin];
    int64_t at = 0;
    hash_u64(fp, 0);
    funnel<int64_t>(
        comm, counts.size(), kBlockRows,
        [&](uint64_t from, size_t m, std::vector<int64_t>& out) { out.assign(counts.begin() + from, counts.begin() + from + m); },
        [&](const std::vector<int64_t>& v) {
          for (int64_t c : v) hash_u64(fp, static_cast<uint64_t>(at += c));
        });
  }
  const Interactions* parts[3] = {&shard.train, &shard.valid, &shard.test};
  struct Wire {
    int64_t user, item;
    double timestamp;
    float rating;
  };
  for (int s = 0; s < 3; ++s) {
    const Interactions& x = *parts[s];
    if (has_rating && x.rating.size() != x.size())
      fail(std::string("prepared ") + kSplitNames[s] + " split has no ratings while train has");
    if (has_timestamp && x.timestamp.size() != x.size())
      fail(std::string("prepared ") + kSplitNames[s] + " split has no timestamps while train has");
    // Blocks end at a user's last row, so rank 0 sees whole users: cut points first.
    std::vector<size_t> cuts{0};
    for (size_t i = 0; i < x.size();) {
      size_t j = std::min(x.size(), i + kBlockRows);
      while (j < x.size() && x.user[j] == x.user[j - 1]) ++j;
      cuts.push_back(j);
      i = j;
    }
    std::vector<int32_t> items;
    std::vector<float> ratings;
    std::vector<double> times;
    funnel<Wire>(
        comm, cuts.size() - 1, 1,
        [&](uint64_t j, size_t, std::vector<Wire>& out) {
          out.clear();
          for (size_t r = cuts[j]; r < cuts[j + 1]; ++r)
            out.push_back({x.user[r], x.item[r], has_timestamp ? x.timestamp[r] : 0.0, has_rating ? x.rating[r] : 0.0f});
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
