#include "io/dataset.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "base/error.h"
#include "dist/mpi_comm.h"
#include "io/input.h"

namespace shardrec::io {

namespace {
std::string sp(int s, const char* what) { return std::string("/") + kSplitNames[s] + "/" + what; }

void write_header(H5File& f, int64_t users, int64_t items, const std::string& source) {
  f.write_attr_str("/", "format", kDatasetFormat);
  f.write_attr<int32_t>("/", "version", kDatasetVersion);
  f.write_attr<int64_t>("/", "num_users", users);
  f.write_attr<int64_t>("/", "num_items", items);
  f.write_attr_str("/", "source", source);
}
}  // namespace

DatasetInfo read_info(const H5File& f) {
  DatasetInfo info;
  info.path = f.path();
  if (!f.has_attr("/", "format"))
    fail(f.path() + ": not a shardrec dataset (root attribute 'format' is missing)");
  const std::string fmt = f.read_attr_str("/", "format");
  if (fmt != kDatasetFormat)
    fail(f.path() + ": root attribute 'format' is '" + fmt + "', expected '" + kDatasetFormat + "'");
  const int version = f.read_attr<int32_t>("/", "version");
  if (version != kDatasetVersion)
    fail(f.path() + ": dataset schema version " + std::to_string(version) + ", this build reads " +
         std::to_string(kDatasetVersion));
  info.num_users = f.read_attr<int64_t>("/", "num_users");
  info.num_items = f.read_attr<int64_t>("/", "num_items");
  if (info.num_users <= 0 || info.num_items <= 0)
    fail(f.path() + ": num_users and num_items must be positive");
  for (int s = 0; s < 3; ++s) {
    const auto ptr_shape = f.shape(sp(s, "indptr"));
    if (ptr_shape.size() != 1 || ptr_shape[0] != info.num_users + 1)
      fail(f.path() + ": dataset " + sp(s, "indptr") + " must have num_users + 1 = " +
           std::to_string(info.num_users + 1) + " entries");
    const auto item_shape = f.shape(sp(s, "item"));
    if (item_shape.size() != 1) fail(f.path() + ": dataset " + sp(s, "item") + " must be 1-D");
    info.rows[s] = item_shape[0];
    info.has_rating[s] = f.exists(sp(s, "rating"));
    if (info.has_rating[s] && f.shape(sp(s, "rating")) != item_shape)
      fail(f.path() + ": dataset " + sp(s, "rating") + " must have as many rows as " + sp(s, "item"));
  }
  if (info.rows[0] == 0) fail(f.path() + ": the train split is empty");
  info.has_mapping = f.exists("/mapping/user_raw");
  try {  // optional: labeled datasets only
    info.label_threshold = f.read_attr<double>("/", "label_threshold");
  } catch (const Error&) {
  }
  if (!std::isnan(info.label_threshold) && !(info.has_rating[0] && std::isfinite(info.label_threshold)))
    fail(f.path() + ": root attribute label_threshold needs a finite value and a /train/rating dataset");
  if (f.has_attr("/", "fingerprint")) info.fingerprint = f.read_attr_str("/", "fingerprint");
  if (info.has_mapping) {
    if (f.shape("/mapping/user_raw") != std::vector<int64_t>{info.num_users} ||
        f.shape("/mapping/item_raw") != std::vector<int64_t>{info.num_items})
      fail(f.path() + ": /mapping/user_raw and /mapping/item_raw must have num_users and num_items entries");
  }
  return info;
}

std::string dataset_fingerprint(const PreparedDataset& d) {
  Fnv64 h;
  auto u64 = [&](uint64_t v) {  // little-endian, whatever the machine
    unsigned char b[8];
    for (int k = 0; k < 8; ++k) b[k] = static_cast<unsigned char>(v >> (8 * k));
    h.add(b, 8);
  };
  u64(static_cast<uint64_t>(d.num_users()));
  u64(static_cast<uint64_t>(d.num_items()));
  // /train/indptr, then /train/item (each item as 8 bytes, so the layout has one integer width).
  std::vector<int64_t> ptr(d.num_users() + 1, 0);
  for (int64_t u : d.train.user) ++ptr[u + 1];
  for (int64_t u = 0; u < d.num_users(); ++u) ptr[u + 1] += ptr[u];
  for (int64_t p : ptr) u64(static_cast<uint64_t>(p));
  for (int64_t i : d.train.item) u64(static_cast<uint64_t>(i));
  for (const auto* ids : {&d.user_raw, &d.item_raw})
    for (const std::string& id : *ids) {
      u64(id.size());
      h.add(id.data(), id.size());
    }
  return h.hex();
}

void write_dataset(const PreparedDataset& d, const std::string& path, const std::string& source,
                   const std::function<void(H5File&)>& extra) {
  const bool timed = !d.train.timestamp.empty();
  DatasetWriter w(path, d.num_users(), d.num_items(), !d.train.rating.empty(), source, timed);
  const Interactions* parts[3] = {&d.train, &d.valid, &d.test};
  for (int s = 0; s < 3; ++s) {
    const Interactions& x = *parts[s];
    const bool rated = !d.train.rating.empty();
    if (rated && x.rating.size() != x.size())
      fail(std::string("prepared ") + kSplitNames[s] + " split has no ratings while train has");
    if (timed && x.timestamp.size() != x.size())
      fail(std::string("prepared ") + kSplitNames[s] + " split has no timestamps while train has");
    std::vector<int32_t> items;
    std::vector<float> ratings;
    std::vector<double> times;
    for (size_t i = 0; i < x.size();) {
      size_t j = i;
      items.clear();
      ratings.clear();
      times.clear();
      while (j < x.size() && x.user[j] == x.user[i]) {
        if (x.item[j] < 0 || x.item[j] >= d.num_items())
          fail(std::string("prepared ") + kSplitNames[s] + " split: item id " +
               std::to_string(x.item[j]) + " at row " + std::to_string(j) + " outside the table");
        items.push_back(static_cast<int32_t>(x.item[j]));
        if (rated) ratings.push_back(x.rating[j]);
        if (timed) times.push_back(x.timestamp[j]);
        ++j;
      }
      w.add_user(s, x.user[i], items, ratings, times);
      i = j;
    }
  }
  w.write_mapping(d.user_raw, d.item_raw);
  if (!std::isnan(d.label_threshold)) {
    if (d.train.rating.empty()) fail("a labeled dataset (label threshold) needs ratings");
    w.file().write_attr<double>("/", "label_threshold", d.label_threshold);
  }
  w.file().write_attr_str("/", "fingerprint", dataset_fingerprint(d));
  if (extra) extra(w.file());
  w.finish();
}

void DatasetWriter::write_mapping(const std::vector<std::string>& user_raw,
                                  const std::vector<std::string>& item_raw) {
  if (static_cast<int64_t>(user_raw.size()) != num_users_ ||
      static_cast<int64_t>(item_raw.size()) != num_items_)
    fail(out_.tmp_path() + ": the id mappings must cover every user and item");
  file_.create_group("/mapping");
  file_.write_strings("/mapping/user_raw", user_raw);
  file_.write_strings("/mapping/item_raw", item_raw);
}

DatasetWriter::DatasetWriter(const std::string& path, int64_t num_users, int64_t num_items,
                             bool has_rating, const std::string& source, bool has_timestamp)
    : out_(path),
      num_users_(num_users),
      num_items_(num_items),
      has_rating_(has_rating),
      has_timestamp_(has_timestamp) {
  if (num_items > INT32_MAX) fail(path + ": more than 2^31 items is not supported");
  file_ = H5File::create(out_.tmp_path(), path);
  write_header(file_, num_users, num_items, source);
  for (int s = 0; s < 3; ++s) {
    file_.create_group(std::string("/") + kSplitNames[s]);
    file_.create_dataset<int64_t>(sp(s, "indptr"), 0, 0, true);
    file_.create_dataset<int32_t>(sp(s, "item"), 0, 0, true);
    if (has_rating) file_.create_dataset<float>(sp(s, "rating"), 0, 0, true);
    if (has_timestamp) file_.create_dataset<double>(sp(s, "timestamp"), 0, 0, true);
    splits_[s].ptr.push_back(0);
  }
}

void DatasetWriter::add_user(int split, int64_t user, std::span<const int32_t> items,
                             std::span<const float> ratings, std::span<const double> timestamps) {
  Split& s = splits_[split];
  if (user < s.next_user || user >= num_users_)
    fail(out_.tmp_path() + ": users must arrive in increasing order within [0, num_users)");
  if (has_rating_ && ratings.size() != items.size())
    fail(out_.tmp_path() + ": every row needs a rating in this dataset");
  if (has_timestamp_ && timestamps.size() != items.size())
    fail(out_.tmp_path() + ": every row needs a timestamp in this dataset");
  // Users without rows in between get empty ranges.
  for (; s.next_user < user; ++s.next_user) s.ptr.push_back(s.rows);
  s.item.insert(s.item.end(), items.begin(), items.end());
  if (has_rating_) s.rating.insert(s.rating.end(), ratings.begin(), ratings.end());
  if (has_timestamp_) s.timestamp.insert(s.timestamp.end(), timestamps.begin(), timestamps.end());
  s.rows += static_cast<int64_t>(items.size());
  s.ptr.push_back(s.rows);
  s.next_user = user + 1;
  if (s.item.size() >= (1u << 22) || s.ptr.size() >= (1u << 20)) flush(split);
}

void DatasetWriter::flush(int split) {
  Split& s = splits_[split];
  file_.write_rows<int64_t>(sp(split, "indptr"), s.ptr_written, s.ptr.data(), s.ptr.size());
  file_.write_rows<int32_t>(sp(split, "item"), s.rows_written, s.item.data(), s.item.size());
  if (has_rating_)
    file_.write_rows<float>(sp(split, "rating"), s.rows_written, s.rating.data(), s.rating.size());
  if (has_timestamp_)
    file_.write_rows<double>(sp(split, "timestamp"), s.rows_written, s.timestamp.data(),
                             s.timestamp.size());
  s.ptr_written += s.ptr.size();
  s.rows_written += s.item.size();
  s.ptr.clear();
  s.item.clear();
  s.rating.clear();
  s.timestamp.clear();
}

void DatasetWriter::finish() {
  for (int split = 0; split < 3; ++split) {
    Split& s = splits_[split];
    for (; s.next_user < num_users_; ++s.next_user) s.ptr.push_back(s.rows);
    flush(split);
  }
  file_.close();
  out_.commit();
}

namespace {

UserSlice read_slice(const H5File& f, const DatasetInfo& info, int s, int64_t lo, int64_t hi) {
  UserSlice sl;
  sl.user_lo = lo;
  sl.user_hi = hi;
  sl.ptr.resize(hi - lo + 1);
  f.read_rows<int64_t>(sp(s, "indptr"), lo, hi - lo + 1, sl.ptr.data());
  sl.row_lo = sl.ptr[0];
  const int64_t n = sl.ptr.back() - sl.ptr.front();
  for (size_t i = 1; i < sl.ptr.size(); ++i)
    if (sl.ptr[i] < sl.ptr[i - 1])
      fail(f.path() + ": dataset " + sp(s, "indptr") + " decreases at index " +
           std::to_string(lo + i));
  if (n < 0 || sl.row_lo + n > info.rows[s])
    fail(f.path() + ": dataset " + sp(s, "indptr") + " points past the end of " + sp(s, "item"));
  for (auto& p : sl.ptr) p -= sl.row_lo;
  sl.item.resize(n);
  f.read_rows<int32_t>(sp(s, "item"), sl.row_lo, n, sl.item.data());
  for (int64_t i = 0; i < n; ++i)
    if (sl.item[i] < 0 || sl.item[i] >= info.num_items)
      fail(f.path() + ": dataset " + sp(s, "item") + " index " + std::to_string(sl.row_lo + i) +
           ": item id " + std::to_string(sl.item[i]) + " outside the item table of " +
           std::to_string(info.num_items) + " rows");
  if (info.has_rating[s]) {
    sl.rating.resize(n);
    f.read_rows<float>(sp(s, "rating"), sl.row_lo, n, sl.rating.data());
  }
  return sl;
}

// Sorts each user's training items (ratings follow): the negative sampler searches them.
void sort_within_users(UserSlice& sl) {
  const int64_t nu = sl.user_hi - sl.user_lo;
  std::vector<int64_t> idx;
  for (int64_t u = 0; u < nu; ++u) {
    auto b = sl.item.begin() + sl.ptr[u], e = sl.item.begin() + sl.ptr[u + 1];
    if (sl.rating.empty()) {
      std::sort(b, e);
      continue;
    }
    const int64_t n = e - b;
    idx.resize(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t x, int64_t y) { return b[x] < b[y]; });
    std::vector<int32_t> it(n);
    std::vector<float> rt(n);
    for (int64_t k = 0; k < n; ++k) {
      it[k] = b[idx[k]];
      rt[k] = sl.rating[sl.ptr[u] + idx[k]];
    }
    std::copy(it.begin(), it.end(), b);
    std::copy(rt.begin(), rt.end(), sl.rating.begin() + sl.ptr[u]);
  }
}

}  // namespace

DataShard load_shard(const std::string& path, dist::Comm& comm) {
  auto* mpi = dynamic_cast<dist::MpiComm*>(&comm);
  dist::BlockingRegion region(comm, "reading dataset " + path + " (parallel HDF5)");
  H5File f = H5File::open_read(path, mpi ? mpi->native_handle() : nullptr);
  DataShard shard;
  shard.info = read_info(f);
  const DatasetInfo& info = shard.info;
  // The partition needs a handful of indptr entries, read one at a time.
  std::map<int64_t, int64_t> cache;
  auto ptr_at = [&](int64_t u) {
    auto it = cache.find(u);
    if (it != cache.end()) return it->second;
    int64_t v = 0;
    f.read_rows<int64_t>("/train/indptr", u, 1, &v);
    return cache[u] = v;
  };
  shard.users = dist::Sharding::range(dist::balanced_bounds(info.num_users, comm.size(), ptr_at));
  const int64_t lo = shard.users.global_id(comm.rank(), 0);
  const int64_t hi = lo + shard.users.local_rows(comm.rank());
  for (int s = 0; s < 3; ++s) shard.split[s] = read_slice(f, info, s, lo, hi);
  sort_within_users(shard.split[0]);
  return shard;
}

DataShard shard_from_memory(const PreparedDataset& d, dist::Comm& comm) {
  DataShard shard;
  shard.info.path = "<memory>";
  shard.info.num_users = d.num_users();
  shard.info.num_items = d.num_items();
  shard.info.label_threshold = d.label_threshold;
  const Interactions* parts[3] = {&d.train, &d.valid, &d.test};
  std::vector<int64_t> ptrs[3];
  for (int s = 0; s < 3; ++s) {
    shard.info.rows[s] = parts[s]->size();
    shard.info.has_rating[s] = !parts[s]->rating.empty();
    ptrs[s].assign(d.num_users() + 1, 0);
    for (auto u : parts[s]->user) ptrs[s][u + 1]++;
    for (int64_t u = 0; u < d.num_users(); ++u) ptrs[s][u + 1] += ptrs[s][u];
  }
  shard.users = dist::Sharding::range(dist::balanced_bounds(
      d.num_users(), comm.size(), [&](int64_t u) { return ptrs[0][u]; }));
  const int64_t lo = shard.users.global_id(comm.rank(), 0);
  const int64_t hi = lo + shard.users.local_rows(comm.rank());
  for (int s = 0; s < 3; ++s) {
    UserSlice& sl = shard.split[s];
    sl.user_lo = lo;
    sl.user_hi = hi;
    sl.row_lo = ptrs[s][lo];
    for (int64_t u = lo; u <= hi; ++u) sl.ptr.push_back(ptrs[s][u] - sl.row_lo);
    for (int64_t r = ptrs[s][lo]; r < ptrs[s][hi]; ++r) {
      sl.item.push_back(static_cast<int32_t>(parts[s]->item[r]));
      if (shard.info.has_rating[s]) sl.rating.push_back(parts[s]->rating[r]);
    }
  }
  sort_within_users(shard.split[0]);
  return shard;
}

std::vector<std::string> read_raw_ids(const H5File& f, const DatasetInfo& info,
                                      const std::string& kind, int64_t start, int64_t count) {
  if (info.has_mapping) return f.read_strings("/mapping/" + kind + "_raw", start, count);
  std::vector<std::string> out(count);
  for (int64_t i = 0; i < count; ++i) out[i] = std::to_string(start + i);
  return out;
}

}  // namespace shardrec::io
