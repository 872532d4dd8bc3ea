// In-memory interactions with dense ids, as produced by `shardrec prep` before they are written.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace shardrec::io {

// One split. Rows are sorted by user; within a user they keep their input order (chronological
// when the split was made by timestamp).
struct Interactions {
  std::vector<int64_t> user, item;
  std::vector<float> rating;      // empty when the input has no rating column
  std::vector<double> timestamp;  // empty when the input has no timestamp column
  size_t size() const { return user.size(); }
};

struct PreparedDataset {
  std::vector<std::string> user_raw, item_raw;  // dense id -> raw id
  Interactions train, valid, test;
  // Labeled data (Inverse Learning): label = rating > label_threshold; NaN = not labeled.
  double label_threshold = std::numeric_limits<double>::quiet_NaN();
  int64_t num_users() const { return static_cast<int64_t>(user_raw.size()); }
  int64_t num_items() const { return static_cast<int64_t>(item_raw.size()); }
};

}  // namespace shardrec::io
