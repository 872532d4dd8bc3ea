#include "dist/sharding.h"

#include <algorithm>

#include "base/error.h"

namespace shardrec::dist {

Sharding Sharding::range(std::vector<int64_t> bounds) {
  SHARDREC_CHECK(bounds.size() >= 2 && bounds.front() == 0, "range sharding: bad bounds");
  for (size_t i = 1; i < bounds.size(); ++i)
    SHARDREC_CHECK(bounds[i] >= bounds[i - 1], "range sharding: bounds must not decrease");
  Sharding s;
  s.kind_ = Kind::kRange;
  s.world_ = static_cast<int>(bounds.size()) - 1;
  s.rows_ = bounds.back();
  s.bounds_ = std::move(bounds);
  return s;
}

Sharding Sharding::modulo(int64_t rows, int world) {
  Sharding s;
  s.kind_ = Kind::kModulo;
  s.world_ = world;
  s.rows_ = rows;
  return s;
}

Sharding Sharding::table(int64_t rows, int world, int owner) {
  if (owner < 0 || owner >= world)
    fail("table sharding: owner rank " + std::to_string(owner) + " outside 0.." +
         std::to_string(world - 1));
  Sharding s;
  s.kind_ = Kind::kTable;
  s.world_ = world;
  s.rows_ = rows;
  s.table_owner_ = owner;
  return s;
}

Sharding Sharding::parse(const std::string& spec, int64_t rows, int world) {
  if (spec == "mod") return modulo(rows, world);
  if (spec == "range") {
    std::vector<int64_t> b(world + 1);
    for (int k = 0; k <= world; ++k) b[k] = rows * k / world;
    return range(b);
  }
  if (spec.rfind("table:", 0) == 0) {
    try {
      return table(rows, world, std::stoi(spec.substr(6)));
    } catch (const std::logic_error&) {
    }
  }
  fail("sharding '" + spec + "': expected range, mod or table:RANK");
}

int Sharding::owner(int64_t id) const {
  switch (kind_) {
    case Kind::kModulo: return static_cast<int>(id % world_);
    case Kind::kTable: return table_owner_;
    case Kind::kRange:
      return static_cast<int>(std::upper_bound(bounds_.begin() + 1, bounds_.end() - 1, id) -
                              (bounds_.begin() + 1));
  }
  return 0;
}

int64_t Sharding::local_index(int64_t id) const { return locate(id).second; }

int64_t Sharding::global_id(int rank, int64_t local) const {
  switch (kind_) {
    case Kind::kModulo: return local * world_ + rank;
    case Kind::kTable: return local;
    case Kind::kRange: return bounds_[rank] + local;
  }
  return 0;
}

int64_t Sharding::local_rows(int rank) const {
  switch (kind_) {
    case Kind::kModulo: return rank < rows_ ? (rows_ - rank + world_ - 1) / world_ : 0;
    case Kind::kTable: return rank == table_owner_ ? rows_ : 0;
    case Kind::kRange: return bounds_[rank + 1] - bounds_[rank];
  }
  return 0;
}

std::string Sharding::describe() const {
  switch (kind_) {
    case Kind::kModulo: return "mod";
    case Kind::kTable: return "table:" + std::to_string(table_owner_);
    case Kind::kRange: return "range";
  }
  return "?";
}

std::vector<int64_t> balanced_bounds(int64_t rows, int world,
                                     const std::function<int64_t(int64_t)>& ptr_at) {
  const int64_t total = ptr_at(rows);
  std::vector<int64_t> b(world + 1, 0);
  b[world] = rows;
  for (int k = 1; k < world; ++k) {
    const int64_t target = (total * k + world - 1) / world;
    // First u in [b[k-1], rows] with ptr_at(u) >= target (ptr_at is non-decreasing).
    int64_t lo = b[k - 1], hi = rows;
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      if (ptr_at(mid) >= target) hi = mid; else lo = mid + 1;
    }
    b[k] = lo;
  }
  return b;
}

}  // namespace shardrec::dist
