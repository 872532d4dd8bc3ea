// The shardrec HDF5 dataset (schema in docs/data-format.md) and the per-rank view of it.
// Each split is stored as CSR by user: /<split>/indptr (num_users + 1 offsets) and /<split>/item,
// so that the rank owning users [lo, hi) reads exactly one contiguous slab of every split.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "dist/sharding.h"
#include "io/hdf5_util.h"
#include "io/interactions.h"

namespace shardrec::io {

inline constexpr const char* kDatasetFormat = "shardrec-dataset";
inline constexpr int kDatasetVersion = 1;
inline constexpr const char* kSplitNames[3] = {"train", "valid", "test"};

struct DatasetInfo {
  std::string path;
  int64_t num_users = 0, num_items = 0;
  int64_t rows[3] = {0, 0, 0};  // train, valid, test
  bool has_rating[3] = {false, false, false};
  bool has_mapping = false;  // /mapping/{user,item}_raw present (else raw id = dense id)
  // Labeled datasets (shardrec prep --label-threshold): label = rating > this. NaN when the root
  // attribute label_threshold is absent (older files, implicit feedback).
  double label_threshold = std::numeric_limits<double>::quiet_NaN();
  // The root attribute fingerprint (prep datasets, see dataset_fingerprint); empty when absent.
  std::string fingerprint;
};

// 16 hex digits: Fnv64 (io/input.h) of the training CSR and the id mappings, laid out as
// docs/data-format.md says. Equal for datasets whose training data and ids are equal, whatever
// the files' other bytes; what params and checkpoints can name the dataset by.
std::string dataset_fingerprint(const PreparedDataset& d);

// Reads and validates the schema; errors name the file and the offending dataset or attribute.
DatasetInfo read_info(const H5File& f);

// Writes a prepared dataset atomically (temporary name, then rename). `extra`, when given, adds
// objects (e.g. /features) to the temporary file before it is finished; if it throws, no file
// is left behind.
void write_dataset(const PreparedDataset& d, const std::string& path, const std::string& source,
                   const std::function<void(H5File&)>& extra = {});

// Streaming writer for data too large for memory (shardrec synth): users must arrive in
// increasing order, each with all its rows of one split.
class DatasetWriter {
 public:
  DatasetWriter(const std::string& path, int64_t num_users, int64_t num_items, bool has_rating,
                const std::string& source, bool has_timestamp = false);
  // Appends the rows of `user` (>= every earlier user) to `split` (0 train, 1 valid, 2 test).
  void add_user(int split, int64_t user, std::span<const int32_t> items,
                std::span<const float> ratings = {}, std::span<const double> timestamps = {});
  // Raw ids by dense id; without them readers take raw id = dense id.
  void write_mapping(const std::vector<std::string>& user_raw,
                     const std::vector<std::string>& item_raw);
  void finish();  // writes the remaining buffers and indptr tails, then renames into place
  // The temporary file, for objects beyond the splits and mappings (before finish()).
  H5File& file() { return file_; }

 private:
  void flush(int split);
  AtomicFile out_;
  H5File file_;
  int64_t num_users_, num_items_;
  bool has_rating_, has_timestamp_;
  struct Split {
    int64_t next_user = 0, rows = 0, rows_written = 0, ptr_written = 0;
    std::vector<int64_t> ptr;  // pending indptr entries
    std::vector<int32_t> item;
    std::vector<float> rating;
    std::vector<double> timestamp;
  } splits_[3];
};

// One split's rows for a contiguous range of users, in CSR form.
struct UserSlice {
  int64_t user_lo = 0, user_hi = 0;
  int64_t row_lo = 0;         // dataset index of the first row held here
  std::vector<int64_t> ptr;   // user_hi - user_lo + 1 offsets, ptr[0] = 0
  std::vector<int32_t> item;
  std::vector<float> rating;  // empty when the split has no ratings
  int64_t rows() const { return static_cast<int64_t>(item.size()); }
  std::span<const int32_t> items_of(int64_t user) const {
    const int64_t u = user - user_lo;
    return {item.data() + ptr[u], static_cast<size_t>(ptr[u + 1] - ptr[u])};
  }
};

// What one rank holds of a dataset: its users (a range balanced by training rows) and all of
// those users' rows of each split. Within a user, training items are sorted ascending (negative
// sampling searches them); this depends only on the data, never on the number of ranks.
struct DataShard {
  DatasetInfo info;
  dist::Sharding users;  // range sharding of the user table
  UserSlice split[3];
  const UserSlice& train() const { return split[0]; }
};

// Reads this rank's part with parallel HDF5 (MPI-IO when comm is an MpiComm).
DataShard load_shard(const std::string& path, dist::Comm& comm);
// The same view built from an in-memory dataset (for tests: ranks as threads).
DataShard shard_from_memory(const PreparedDataset& d, dist::Comm& comm);

// Raw ids of dense ids [start, start+count) of "user" or "item" (identity when no mapping).
std::vector<std::string> read_raw_ids(const H5File& f, const DatasetInfo& info,
                                      const std::string& kind, int64_t start, int64_t count);

}  // namespace shardrec::io
