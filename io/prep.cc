#include "io/prep.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "base/error.h"
#include "base/rng.h"

namespace shardrec::io {
namespace {

using namespace prep_steps;
constexpr uint64_t kRatioSplitTag = 0x726174696f5f7370ULL;  // keys the per-user shuffle

// One input file's rows. Interactions doubles as the row table: ids are provisional (global
// first-seen order across files) until remapped to dense ids.
struct Table {
  std::string path;
  Interactions rows;
  bool has_rating = false, has_timestamp = false;
  Format format = Format::Csv;  // as read
};

void keep_rows(Interactions& t, const std::vector<char>& keep) {
  size_t w = 0;
  for (size_t r = 0; r < t.size(); ++r) {
    if (!keep[r]) continue;
    t.user[w] = t.user[r];
    t.item[w] = t.item[r];
    if (!t.rating.empty()) t.rating[w] = t.rating[r];
    if (!t.timestamp.empty()) t.timestamp[w] = t.timestamp[r];
    ++w;
  }
  t.user.resize(w);
  t.item.resize(w);
  if (!t.rating.empty()) t.rating.resize(w);
  if (!t.timestamp.empty()) t.timestamp.resize(w);
}

Interactions select(const Interactions& t, const std::vector<size_t>& rows) {
  Interactions out;
  out.user.reserve(rows.size());
  out.item.reserve(rows.size());
  for (size_t r : rows) {
    out.user.push_back(t.user[r]);
    out.item.push_back(t.item[r]);
    if (!t.rating.empty()) out.rating.push_back(t.rating[r]);
    if (!t.timestamp.empty()) out.timestamp.push_back(t.timestamp[r]);
  }
  return out;
}

// Row indices grouped by user (counting sort, stable) and each user's [begin, end) offsets.
struct Groups {
  std::vector<size_t> rows;
  std::vector<size_t> begin;  // size num_users + 1
};

Groups group_by_user(const Interactions& t, int64_t num_users) {
  Groups g;
  g.begin.assign(num_users + 1, 0);
  for (int64_t u : t.user) ++g.begin[u + 1];
  std::partial_sum(g.begin.begin(), g.begin.end(), g.begin.begin());
  g.rows.resize(t.size());
  std::vector<size_t> next(g.begin.begin(), g.begin.end() - 1);
  for (size_t r = 0; r < t.size(); ++r) g.rows[next[t.user[r]]++] = r;
  return g;
}

}  // namespace

namespace prep_steps {

std::string fmt(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::vector<std::pair<std::string, int>> input_slots(const PrepOptions& o) {
  const size_t n = o.inputs.size();
  std::vector<std::pair<std::string, int>> files;
  if (o.split != SplitMode::Presplit || o.presplit_roles.empty()) {
    if (o.split == SplitMode::Presplit && n == 2 && !o.inputs[0].empty() && !o.inputs[1].empty())
      fail("option --presplit: two input files with --split presplit; say which is which: "
           "--presplit train,test or --presplit train,valid");
    for (size_t k = 0; k < n; ++k)
      if (!o.inputs[k].empty()) files.emplace_back(o.inputs[k], o.split == SplitMode::Presplit ? k : 0);
    return files;
  }
  SHARDREC_CHECK(o.presplit_roles.size() == n,
                 "option --presplit: " + std::to_string(o.presplit_roles.size()) +
                     " roles for " + std::to_string(n) + " input files");
  std::vector<char> seen(3, 0);
  for (size_t k = 0; k < n; ++k) {
    const std::string& role = o.presplit_roles[k];
    int slot = -1;
    for (int s = 0; s < 3; ++s)
      if (role == kSplitRoles[s]) slot = s;
    SHARDREC_CHECK(slot >= 0, "option --presplit: unknown split '" + role +
                                  "' (expected train, valid or test)");
    SHARDREC_CHECK(!o.inputs[k].empty(), "option --presplit: input " + std::to_string(k + 1) +
                                             " (" + role + ") is empty: leave an absent split out");
    seen[slot] = 1;
    files.emplace_back(o.inputs[k], slot);  // a split named again: its files are concatenated
  }
  SHARDREC_CHECK(seen[0], "option --presplit: one of the files must be the train split");
  return files;
}

void validate(const PrepOptions& o) {
  const size_t n = o.inputs.size();
  SHARDREC_CHECK(o.presplit_roles.empty() || o.split == SplitMode::Presplit,
                 "option --presplit applies to --split presplit only");
  if (o.split == SplitMode::Presplit && o.presplit_roles.empty()) {
    SHARDREC_CHECK(n >= 1 && n <= 3 && !o.inputs[0].empty(),
                   "split mode presplit takes 1 to 3 inputs [train, valid, test] with a train "
                   "file, got " + std::to_string(n) + (n && o.inputs[0].empty() ? " (empty train)" : "") +
                   "; several files per split need --presplit (e.g. train,train,test)");
  } else if (o.split != SplitMode::Presplit) {
    bool ok = n >= 1;
    for (const auto& in : o.inputs) ok = ok && !in.empty();
    SHARDREC_CHECK(ok, "split mode " + split_mode_name(o.split) +
                           " takes one or more input files (concatenated), got " + std::to_string(n));
  }
  if (o.split == SplitMode::Ratio) {
    SHARDREC_CHECK(o.ratios.size() == 2 || o.ratios.size() == 3,
                   "split ratios need 2 (train, test) or 3 (train, valid, test) values, got " +
                       std::to_string(o.ratios.size()));
    double sum = 0;
    for (double r : o.ratios) {
      SHARDREC_CHECK(std::isfinite(r) && r >= 0, "split ratios must be non-negative numbers");
      sum += r;
    }
    SHARDREC_CHECK(sum > 0, "split ratios must not all be zero");
  }
  SHARDREC_CHECK(o.user_core >= 0 && o.item_core >= 0, "user_core and item_core must be >= 0");
  SHARDREC_CHECK(!o.rating_threshold || std::isfinite(*o.rating_threshold),
                 "rating threshold must be a finite number");
  SHARDREC_CHECK(!o.label_threshold || std::isfinite(*o.label_threshold),
                 "label threshold must be a finite number");
  SHARDREC_CHECK(!o.rating_range || (std::isfinite(o.rating_range->first) &&
                                     std::isfinite(o.rating_range->second) &&
                                     o.rating_range->first <= o.rating_range->second),
                 "rating range must be two finite numbers lo <= hi");
}

bool parse_integer(const std::string& s, int64_t& v) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

bool RawIdLess::operator()(const std::string& a, const std::string& b) const {
  if (numeric) {
    int64_t x = 0, y = 0;
    parse_integer(a, x);
    parse_integer(b, y);
    if (x != y) return x < y;
  }
  return a < b;
}

// RecBole's `_calcu_split_ids` counts for one group of n rows (ratios already normalised).
std::vector<int64_t> split_counts(int64_t n, const std::vector<double>& ratios) {
  const size_t m = ratios.size();
  std::vector<int64_t> cnt(m);
  int64_t rest = 0;
  for (size_t k = 1; k < m; ++k) rest += cnt[k] = static_cast<int64_t>(ratios[k] * n);
  cnt[0] = n - rest;
  for (size_t k = m - 1; k >= 1; --k) {
    if (cnt[0] <= 1) break;
    const double want = ratios[k] * n;
    if (want > 0 && want < 1) {
      ++cnt[k];
      --cnt[0];
    }
  }
  return cnt;
}

RatioSplit::RatioSplit(const std::vector<double>& raw_ratios, uint64_t seed) : seed_(seed) {
  double sum = 0;
  for (double r : raw_ratios) sum += r;  // in order, like Python's sum()
  for (double r : raw_ratios) ratios_.push_back(r / sum);
}

void RatioSplit::parts(int64_t user, int64_t n, int* part) const {
  if (n == 0) return;
  // Part k of the ratio list -> output split (2 ratios mean train and test).
  const int target[3] = {0, ratios_.size() == 3 ? 1 : 2, 2};
  const std::vector<int64_t> cnt = split_counts(n, ratios_);
  const Permutation perm(static_cast<uint64_t>(n), hash64(seed_, kRatioSplitTag, user));
  for (int64_t j = 0; j < n; ++j) {
    int64_t pos = static_cast<int64_t>(perm(static_cast<uint64_t>(j)));
    size_t k = 0;
    while (k + 1 < cnt.size() && pos >= cnt[k]) pos -= cnt[k++];
    part[j] = target[k];
  }
}

void loo_parts(const double* timestamp, size_t n, std::vector<size_t>& order, int* part) {
  order.resize(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return timestamp[a] < timestamp[b]; });
  const size_t held_out = n >= 3 ? 2 : n == 2 ? 1 : 0;
  for (size_t j = 0; j < n; ++j) {
    const size_t from_end = n - j;  // 1 = latest
    part[j] = j < n - held_out ? 0 : from_end == 1 ? 2 : 1;
  }
}

}  // namespace prep_steps

namespace {

// Parses the inputs and puts their raw ids into one provisional id space.
class Loader {
 public:
  Table load(const std::string& path, const ParseOptions& options, const std::string& split) {
    RawInteractions raw = parse_file(path, options);
    files.push_back({path, split, raw.format, raw.file_bytes, raw.file_hash,
                     static_cast<int64_t>(raw.size())});
    const std::vector<int64_t> users = global_ids(raw.user_ids, user_index_, user_raw);
    const std::vector<int64_t> items = global_ids(raw.item_ids, item_index_, item_raw);
    Table t{path, {}, raw.has_rating, raw.has_timestamp, raw.format};
    t.rows.user.resize(raw.size());
    t.rows.item.resize(raw.size());
    for (size_t r = 0; r < raw.size(); ++r) {
      t.rows.user[r] = users[raw.user[r]];
      t.rows.item[r] = items[raw.item[r]];
    }
    t.rows.rating = std::move(raw.rating);
    t.rows.timestamp = std::move(raw.timestamp);
    return t;
  }

  std::vector<std::string> user_raw, item_raw;  // provisional id -> raw id
  std::vector<PrepReport::InputFile> files;

 private:
  using Index = std::unordered_map<std::string, int64_t>;
  static std::vector<int64_t> global_ids(const std::vector<std::string>& local, Index& index,
                                         std::vector<std::string>& names) {
    std::vector<int64_t> out(local.size());
    for (size_t i = 0; i < local.size(); ++i) {
      auto [it, added] = index.try_emplace(local[i], static_cast<int64_t>(names.size()));
      if (added) names.push_back(local[i]);
      out[i] = it->second;
    }
    return out;
  }
  Index user_index_, item_index_;
};

void apply_threshold(Table& t, double threshold, bool must_keep_rows) {
  std::vector<char> keep(t.rows.size());
  for (size_t r = 0; r < keep.size(); ++r) keep[r] = t.rows.rating[r] >= threshold;
  keep_rows(t.rows, keep);
  if (must_keep_rows && t.rows.size() == 0)
    fail(t.path + ": no rows left after the rating threshold (kept rating >= " + fmt(threshold) +
         ")");
}

void dedup(Table& t) {
  std::unordered_set<uint64_t> seen;
  seen.reserve(t.rows.size());
  std::vector<char> keep(t.rows.size());
  for (size_t r = 0; r < keep.size(); ++r) {
    const uint64_t key = (static_cast<uint64_t>(t.rows.user[r]) << 32) ^
                         static_cast<uint64_t>(t.rows.item[r]);
    keep[r] = seen.insert(key).second;
  }
  keep_rows(t.rows, keep);
}

// Returns the number of passes that removed rows.
int kcore(std::vector<Table*>& tables, int64_t num_users, int64_t num_items, int64_t user_core,
          int64_t item_core) {
  int rounds = 0;
  for (;;) {
    std::vector<int64_t> du(num_users, 0), di(num_items, 0);
    for (Table* t : tables) {
      for (int64_t u : t->rows.user) ++du[u];
      for (int64_t i : t->rows.item) ++di[i];
    }
    bool removed = false;
    for (Table* t : tables) {
      std::vector<char> keep(t->rows.size());
      for (size_t r = 0; r < keep.size(); ++r) {
        keep[r] = du[t->rows.user[r]] >= user_core && di[t->rows.item[r]] >= item_core;
        removed = removed || !keep[r];
      }
      keep_rows(t->rows, keep);
    }
    if (!removed) return rounds;
    ++rounds;
  }
}

// Dense ids for the provisional ids marked used, ordered by raw id (see prep.h). Returns the map
// provisional -> dense (-1 for unused) and fills dense -> raw.
std::vector<int64_t> dense_ids(const std::vector<std::string>& raw, const std::vector<char>& used,
                               std::vector<std::string>& dense_raw) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < raw.size(); ++i)
    if (used[i]) ids.push_back(static_cast<int64_t>(i));
  bool numeric = true;
  for (int64_t i : ids) {
    int64_t v = 0;
    numeric = numeric && parse_integer(raw[i], v);
  }
  const RawIdLess less{numeric};
  std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return less(raw[a], raw[b]); });
  std::vector<int64_t> map(raw.size(), -1);
  dense_raw.clear();
  dense_raw.reserve(ids.size());
  for (size_t d = 0; d < ids.size(); ++d) {
    map[ids[d]] = static_cast<int64_t>(d);
    dense_raw.push_back(raw[ids[d]]);
  }
  return map;
}

void split_ratio(const Interactions& t, int64_t num_users, const std::vector<double>& ratios,
                 uint64_t seed, std::vector<size_t> (&parts)[3]) {
  const RatioSplit split(ratios, seed);
  const Groups g = group_by_user(t, num_users);
  std::vector<int> part;
  for (int64_t u = 0; u < num_users; ++u) {
    const auto n = static_cast<int64_t>(g.begin[u + 1] - g.begin[u]);
    part.resize(n);
    split.parts(u, n, part.data());
    for (int64_t j = 0; j < n; ++j) parts[part[j]].push_back(g.rows[g.begin[u] + j]);
  }
}

void split_loo(const Interactions& t, int64_t num_users, std::vector<size_t> (&parts)[3]) {
  const Groups g = group_by_user(t, num_users);
  std::vector<double> ts;
  std::vector<size_t> order;
  std::vector<int> part;
  for (int64_t u = 0; u < num_users; ++u) {
    const size_t b = g.begin[u], n = g.begin[u + 1] - b;
    ts.resize(n);
    for (size_t j = 0; j < n; ++j) ts[j] = t.timestamp[g.rows[b + j]];
    part.resize(n);
    loo_parts(ts.data(), n, order, part.data());
    for (size_t j = 0; j < n; ++j) parts[part[j]].push_back(g.rows[b + order[j]]);
  }
}

}  // namespace

SplitMode parse_split_mode(const std::string& name) {
  if (name == "ratio" || name == "ro") return SplitMode::Ratio;
  if (name == "loo") return SplitMode::LeaveOneOut;
  if (name == "presplit") return SplitMode::Presplit;
  fail("unknown split mode '" + name + "' (known: ratio, ro, loo, presplit)");
}

std::string split_mode_name(SplitMode mode) {
  switch (mode) {
    case SplitMode::Ratio: return "ratio";
    case SplitMode::LeaveOneOut: return "loo";
    case SplitMode::Presplit: return "presplit";
  }
  return "?";
}

PreparedDataset prepare(const PrepOptions& options, PrepReport* report) {
  validate(options);
  PrepReport rep;

  // 1. Parse every file; then the files of one split are one table (below).
  Loader loader;
  std::vector<Table> read;
  std::vector<int> read_slot;
  const bool pre = options.split == SplitMode::Presplit;
  for (const auto& [file, slot] : input_slots(options)) {
    read.push_back(loader.load(file, options, pre ? kSplitRoles[slot] : "all"));
    read_slot.push_back(slot);
  }
  rep.inputs = loader.files;
  std::vector<Table*> tables;
  for (Table& t : read) tables.push_back(&t);
  bool has_rating = true, has_timestamp = true;
  for (Table* t : tables) {
    has_rating = has_rating && t->has_rating;
    has_timestamp = has_timestamp && t->has_timestamp;
    rep.rows_read += static_cast<int64_t>(t->rows.size());
  }
  for (Table* t : tables) {
    if (options.label_threshold && !t->has_rating)
      fail(t->path + ": field rating: a label threshold (label = rating > " +
           fmt(*options.label_threshold) + ") needs a rating column, but this " +
           format_name(t->format) + " input has none" +
           (t->format == Format::Csv ? " (set the rating column)" : ""));
    if (options.rating_range && !t->has_rating)
      fail(t->path + ": field rating: a rating range needs a rating column, but this input has none");
    if (options.rating_range)
      for (size_t r = 0; r < t->rows.size(); ++r) {
        const double v = t->rows.rating[r];
        if (!(v >= options.rating_range->first && v <= options.rating_range->second))
          fail(t->path + ": data row " + std::to_string(r + 1) + ": field rating: " + fmt(v) +
               " is outside the rating range [" + fmt(options.rating_range->first) + ", " +
               fmt(options.rating_range->second) + "]");
      }
    if (options.rating_threshold && !t->has_rating)
      fail(t->path + ": a rating threshold needs a rating column, but this " +
           format_name(t->format) + " input has none" +
           (t->format == Format::Csv ? " (set the rating column)" : ""));
    if (options.split == SplitMode::LeaveOneOut && !t->has_timestamp)
      fail(t->path + ": the leave-one-out split needs a timestamp column, but this " +
           format_name(t->format) + " input has none" +
           (t->format == Format::Csv ? " (set the timestamp column)" : ""));
  }

  // The files of one split (all of them in ratio / loo mode) are one table, the rows of each file
  // in turn. storage[slot_of[k]] is split k (ratio / loo: only slot 0, the data set to split).
  std::vector<Table> storage;
  int slot_of[3] = {-1, -1, -1};
  for (int k = 0; k < 3; ++k)
    for (size_t f = 0; f < read.size(); ++f) {
      if (read_slot[f] != k) continue;
      if (slot_of[k] < 0) {
        slot_of[k] = static_cast<int>(storage.size());
        storage.push_back(std::move(read[f]));
        continue;
      }
      Interactions& a = storage[slot_of[k]].rows;
      const Interactions& b = read[f].rows;
      a.user.insert(a.user.end(), b.user.begin(), b.user.end());
      a.item.insert(a.item.end(), b.item.begin(), b.item.end());
      if (has_rating) a.rating.insert(a.rating.end(), b.rating.begin(), b.rating.end());
      if (has_timestamp) a.timestamp.insert(a.timestamp.end(), b.timestamp.begin(), b.timestamp.end());
      storage[slot_of[k]].path += " + " + read[f].path;
    }
  read.clear();
  tables.clear();
  for (Table& t : storage) {
    t.has_rating = has_rating;
    t.has_timestamp = has_timestamp;
    if (!has_rating) t.rows.rating.clear();
    if (!has_timestamp) t.rows.timestamp.clear();
    tables.push_back(&t);
  }
  Table& train = storage[0];

  // 2-4. Filters.
  auto total = [&] {
    int64_t n = 0;
    for (Table* t : tables) n += static_cast<int64_t>(t->rows.size());
    return n;
  };
  if (options.rating_threshold)
    for (Table* t : tables) apply_threshold(*t, *options.rating_threshold, t == &train);
  rep.after_threshold = total();
  if (options.dedup)
    for (Table* t : tables) dedup(*t);
  rep.after_dedup = total();
  if (options.user_core > 1 || options.item_core > 1) {
    rep.kcore_rounds =
        kcore(tables, static_cast<int64_t>(loader.user_raw.size()),
              static_cast<int64_t>(loader.item_raw.size()), options.user_core, options.item_core);
    if (train.rows.size() == 0)
      fail(train.path + ": no rows left after k-core filtering (user_core=" +
           std::to_string(options.user_core) + ", item_core=" + std::to_string(options.item_core) +
           ")");
  }
  rep.after_kcore = total();

  // 5. Dense ids over every remaining row.
  PreparedDataset out;
  {
    std::vector<char> used_u(loader.user_raw.size(), 0), used_i(loader.item_raw.size(), 0);
    for (Table* t : tables) {
      for (int64_t u : t->rows.user) used_u[u] = 1;
      for (int64_t i : t->rows.item) used_i[i] = 1;
    }
    const auto umap = dense_ids(loader.user_raw, used_u, out.user_raw);
    const auto imap = dense_ids(loader.item_raw, used_i, out.item_raw);
    for (Table* t : tables) {
      for (int64_t& u : t->rows.user) u = umap[u];
      for (int64_t& i : t->rows.item) i = imap[i];
      if (!has_rating) t->rows.rating.clear();
      if (!has_timestamp) t->rows.timestamp.clear();
    }
  }
  const int64_t num_users = out.num_users();

  // 6-7. Split; every part comes out grouped by user, stably.
  Interactions* dest[3] = {&out.train, &out.valid, &out.test};
  if (options.split == SplitMode::Presplit) {
    for (int k = 0; k < 3; ++k) {
      if (slot_of[k] < 0) continue;
      const Interactions& rows = storage[slot_of[k]].rows;
      *dest[k] = select(rows, group_by_user(rows, num_users).rows);
    }
  } else {
    std::vector<size_t> parts[3];
    if (options.split == SplitMode::Ratio)
      split_ratio(train.rows, num_users, options.ratios, options.seed, parts);
    else
      split_loo(train.rows, num_users, parts);
    for (int k = 0; k < 3; ++k) *dest[k] = select(train.rows, parts[k]);
  }

  if (options.label_threshold) out.label_threshold = *options.label_threshold;
  if (report) *report = rep;
  return out;
}

}  // namespace shardrec::io
