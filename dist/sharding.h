// Which rank owns which row of a table. Three documented placements:
//   range:  rank r owns ids [bounds[r], bounds[r+1]); used for the user table, with bounds that
//           balance training interactions (balanced_bounds), so a rank's users and their
//           interactions are one contiguous slab of the dataset file;
//   modulo: owner(id) = id % N, local index id / N (HugeCTR's row-wise rule); used for items, whose
//           popular rows (small ids after prep) are spread over all ranks;
//   table:  the whole table on one rank (table-wise placement for models with several tables).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/kinds.h"

namespace shardrec::dist {

class Sharding {
 public:
  using Kind = ShardingKind;

  static Sharding range(std::vector<int64_t> bounds);
  static Sharding modulo(int64_t rows, int world);
  static Sharding table(int64_t rows, int world, int owner);
  // Parses "range" (even split), "mod" or "table:R".
  static Sharding parse(const std::string& spec, int64_t rows, int world);

  Kind kind() const { return kind_; }
  int world() const { return world_; }
  int64_t rows() const { return rows_; }
  int owner(int64_t id) const;
  int64_t local_index(int64_t id) const;
  // owner(id) and local_index(id) at once, inline: the routing's inner loop (one division).
  std::pair<int, int64_t> locate(int64_t id) const {
    switch (kind_) {
      case Kind::kModulo: {
        if (world_ == 1) return {0, id};
        const int64_t q = id / world_;
        return {static_cast<int>(id - q * world_), q};
      }
      case Kind::kTable: return {table_owner_, id};
      case Kind::kRange: {
        const int o = owner(id);
        return {o, id - bounds_[o]};
      }
    }
    return {0, 0};
  }
  int64_t global_id(int rank, int64_t local) const;
  int64_t local_rows(int rank) const;
  std::string describe() const;
  int table_owner() const { return table_owner_; }
  const std::vector<int64_t>& bounds() const { return bounds_; }  // range only

 private:
  Kind kind_ = Kind::kModulo;
  int world_ = 1;
  int64_t rows_ = 0;
  int table_owner_ = 0;
  std::vector<int64_t> bounds_;
};

// Range bounds over `rows` ids that give each of `world` ranks about the same number of
// interactions: bounds[k] is the first id u with ptr_at(u) >= ceil(k * total / world), where
// ptr_at is the CSR offset array of the training interactions (ptr_at(rows) = total).
std::vector<int64_t> balanced_bounds(int64_t rows, int world,
                                     const std::function<int64_t(int64_t)>& ptr_at);

}  // namespace shardrec::dist
