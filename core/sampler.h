// The host side of the draws (base/sampling.h): a sample's draw slots, negatives or unlabeled
// items, with the dataset named when a user leaves nothing to draw.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "base/error.h"
#include "base/sampling.h"
#include "core/model.h"

namespace shardrec {

class Sampler {
 public:
  Sampler(uint64_t seed, int64_t num_items, std::string dataset)
      : seed_(seed), num_items_(num_items), dataset_(std::move(dataset)) {}

  // The k-th negative of dataset row `row` in `epoch`: uniform over the items not in `seen` (the
  // user's sorted training items).
  int64_t negative(int epoch, int64_t row, int k, std::span<const int32_t> seen) const {
    if (epoch != neg_epoch_) {
      neg_epoch_ = epoch;
      neg_base_ = sampling::negative_base(seed_, epoch);
    }
    bool failed = false;
    const int64_t j = sampling::negative(neg_base_, row, k, seen.data(), static_cast<int64_t>(seen.size()),
                                         num_items_, &failed);
    if (failed) no_negative(row);
    return j;
  }
  [[noreturn]] void no_negative(int64_t row) const {
    fail("dataset " + dataset_ + ": a user of training row " + std::to_string(row) +
         " interacted with every item, so no negative item exists");
  }
  // Slot k's negatives of n samples (dataset rows row[i], users' sorted items seen[i] of cnt[i])
  // into out[i * stride], the same draws as negative(). The first candidates are tested in
  // groups with interleaved searches, so that their cache misses overlap. Thread-safe.
  void negatives(int epoch, int k, size_t n, const int64_t* row, const int32_t* const* seen, const int64_t* cnt,
                 int64_t* out, size_t stride) const;
  // The k-th unlabeled item of dataset row `row` in `epoch` (another stream, same distribution).
  int64_t unlabeled(int epoch, int64_t row, int k, std::span<const int32_t> seen) const {
    bool failed = false;
    const int64_t j = sampling::unlabeled(seed_, static_cast<uint64_t>(epoch), row, k, seen.data(),
                                          static_cast<int64_t>(seen.size()), num_items_, &failed);
    if (failed)
      fail("dataset " + dataset_ + ": the user of training row " + std::to_string(row) +
           " rated every item, so no unlabeled item exists");
    return j;
  }
  int64_t draw(DrawKind kind, int epoch, int64_t row, int k, std::span<const int32_t> seen) const {
    return kind == DrawKind::kNegative ? negative(epoch, row, k, seen) : unlabeled(epoch, row, k, seen);
  }

 private:
  uint64_t seed_;
  int64_t num_items_;
  std::string dataset_;
  mutable int neg_epoch_ = -1;  // the negative stream's per-epoch key, cached
  mutable uint64_t neg_base_ = 0;
};

}  // namespace shardrec
