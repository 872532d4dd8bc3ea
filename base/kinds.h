// The kinds that cross from host code into kernels (CPU and CUDA): one definition, so a kernel
// switches on the same enumerators the configuration parsed, never on bare ints.
#pragma once
#include <cstdint>

namespace shardrec {

// Row optimizers (kernels/row_optimizer.h has their formulas).
enum class OptimizerKind : int32_t { kSgd, kAdagrad, kAdam, kAdamDense };

// What the owner-side reduction does with a row's summed gradient g: an optimizer step, or one of
// the Inverse Gradient meta-step's tentative moves (core/inverse_gradient.h), where d(g) is the
// candidate step: kCandidate writes w := d(g) and saves the old row, kFreshStep does w += d(g).
enum class RowMove : int32_t { kOptimizer, kCandidate, kFreshStep };

// Row placements of a table over the ranks (dist/sharding.h).
enum class ShardingKind : int32_t { kRange, kModulo, kTable };

}  // namespace shardrec
