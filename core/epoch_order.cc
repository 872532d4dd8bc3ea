#include "core/epoch_order.h"

#include <algorithm>

#include "base/error.h"

namespace shardrec {

std::span<const LocalSample> EpochOrder::step(int64_t s) {
  Entry* b = order_.data() + start_[s];
  Entry* e = order_.data() + start_[s + 1];
  const size_t n = static_cast<size_t>(e - b);
  std::vector<LocalSample>& out = taken_[s & 1];
  out.resize(n);
  // The user of row r: from the user of r's block of 64 rows, forward (rows rise with users).
  auto user_of = [&](uint32_t r) {
    uint32_t u = block_user_[r >> kBlockBits];
    while (static_cast<int64_t>(r) >= ptr_[u + 1]) ++u;
    return u;
  };
  // Positions within a step are distinct and below B, so the order is total. A step holding a
  // good part of the batch (few ranks) is placed by position in one pass and read back in order;
  // a sparse one (many ranks) is sorted.
  if (n * 8 < batch_) {
    std::sort(b, e, [](const Entry& x, const Entry& y) { return x.off < y.off; });
    for (size_t i = 0; i < n; ++i) out[i] = {b[i].off, b[i].row, user_of(b[i].row)};
  } else {
    by_off_.resize(batch_);
    here_.assign(batch_, 0);
    for (const Entry* x = b; x != e; ++x) {
      by_off_[x->off] = x->row;
      here_[x->off] = 1;
    }
    size_t i = 0;
    for (uint32_t o = 0; o < batch_; ++o)
      if (here_[o]) {
        out[i++] = {o, by_off_[o], 0};
        __builtin_prefetch(&block_user_[by_off_[o] >> kBlockBits]);
      }
    constexpr size_t kAhead = 8;  // the user offsets are read at random too
    for (size_t k = 0; k < n; ++k) {
      if (k + kAhead < n) __builtin_prefetch(&ptr_[block_user_[out[k + kAhead].row >> kBlockBits] + 1]);
      out[k].user = user_of(out[k].row);
    }
  }
  return {out.data(), n};
}

bool run_steps(const PhaseRun& r, const io::UserSlice& tr,
               const std::function<void(int64_t, std::span<const LocalSample>, int64_t)>& fn) {
  return run_steps_ahead(r, tr, [&](const StepView& v, const StepView*) { fn(v.step, v.samples, v.global_n); });
}

bool run_steps_ahead(const PhaseRun& r, const io::UserSlice& tr,
                     const std::function<void(const StepView&, const StepView*)>& fn, ThreadPool* pool) {
  const int64_t B = r.batch, m = r.rows, S = (m + B - 1) / B;
  if (m <= 0) return true;
  auto global_n = [&](int64_t s) { return std::min<int64_t>(B, m - s * B); };
  // Steps [first, S) in order, each with the one after it.
  auto walk = [&](const std::function<std::span<const LocalSample>(int64_t)>& step) {
    StepView next{};
    bool have = false;
    for (int64_t s = std::min(r.first, S); s < S; ++s) {
      const StepView cur = have ? next : StepView{s, step(s), global_n(s)};
      have = s + 1 < S;
      if (have) next = {s + 1, step(s + 1), global_n(s + 1)};
      fn(cur, have ? &next : nullptr);
      if (r.after_step && r.after_step(s)) return false;
    }
    return true;
  };
  const bool all = r.whole_split;
  if (r.dataset_order) {
    if (!all) fail("internal: a dataset-order pass covers the whole training split");
    // Step s holds dataset rows [s*B, (s+1)*B); this rank's rows are one contiguous range.
    std::vector<LocalSample> order(tr.rows());
    uint32_t user = 0;
    for (int64_t k = 0; k < tr.rows(); ++k) {
      while (k >= tr.ptr[user + 1]) ++user;
      order[k] = {static_cast<uint32_t>((tr.row_lo + k) % B), static_cast<uint32_t>(k), user};
    }
    std::vector<size_t> begin(S + 1, 0);
    size_t at = 0;
    for (int64_t s = 0; s < S; ++s) {
      begin[s] = at;
      while (at < order.size() && (tr.row_lo + static_cast<int64_t>(at)) / B == s) ++at;
    }
    begin[S] = at;
    return walk([&](int64_t s) { return std::span<const LocalSample>(order.data() + begin[s], begin[s + 1] - begin[s]); });
  }
  const size_t count = all ? static_cast<size_t>(tr.rows()) : r.local.size();
  const Permutation perm(static_cast<uint64_t>(m), r.order_key);
  auto run = [&](EpochOrder order) { return walk([&](int64_t s) { return order.step(s); }); };
  if (all)
    return run(EpochOrder(perm, B, tr, count, [](size_t k) { return static_cast<uint32_t>(k); },
                          [&](size_t k) { return tr.row_lo + static_cast<int64_t>(k); }, pool));
  return run(EpochOrder(perm, B, tr, count, [&](size_t k) { return r.local[k]; }, [&](size_t k) { return r.index[k]; },
                        pool));
}

void HostBatch::build(const PhaseRun& r, int64_t step, std::span<const LocalSample> s, int64_t global_n,
                      const io::UserSlice& tr, const uint8_t* labels, const Sampler* sampler, DrawKind kind, int rank,
                      ThreadPool* pool) {
  const size_t n = s.size();
  const int per = 1 + r.draws;
  const uint64_t pos0 = static_cast<uint64_t>(step) * static_cast<uint64_t>(r.batch);
  uid.resize(n);
  ukey.resize(n);
  row.resize(n);
  ulocal.resize(n);
  iid.resize(n * per);
  ikey.resize(n * per);
  lab.resize(labels ? n : 0);
  // The samples' rows are spread over the slice: fetch a few samples ahead (the user's offsets,
  // then the positive's line).
  constexpr size_t kAhead = 8;
  const bool host_negatives = sampler && kind == DrawKind::kNegative && r.draws > 0;
  if (host_negatives) {
    seen.resize(n);
    seen_cnt.resize(n);
  }
  auto samples = [&](size_t lo, size_t hi, int) {
    for (size_t i = lo; i < std::min(hi, lo + kAhead); ++i) __builtin_prefetch(&tr.ptr[s[i].user]);
    for (size_t i = lo; i < hi; ++i) {
      if (i + kAhead < n) __builtin_prefetch(&tr.ptr[s[i + kAhead].user]);
      if (i + kAhead / 2 < n) __builtin_prefetch(&tr.item[s[i + kAhead / 2].row]);
      const int64_t user = tr.user_lo + s[i].user;
      const uint64_t pos = pos0 + s[i].off;
      uid[i] = user;
      ukey[i] = pos;
      row[i] = tr.row_lo + s[i].row;
      ulocal[i] = static_cast<int32_t>(s[i].user);
      if (labels) lab[i] = labels[s[i].row];
      iid[i * per] = tr.item[s[i].row];
      const auto items = tr.items_of(user);
      if (host_negatives) {
        seen[i] = items.data();
        seen_cnt[i] = static_cast<int64_t>(items.size());
      } else if (sampler) {
        for (int k = 0; k < r.draws; ++k) iid[i * per + 1 + k] = sampler->draw(kind, r.epoch, row[i], k, items);
      }
      for (int k = 0; k < per; ++k) ikey[i * per + k] = pos * per + k;
    }
  };
  auto negatives = [&](size_t lo, size_t hi, int) {
    for (int k = 0; k < r.draws; ++k)
      sampler->negatives(r.epoch, k, hi - lo, row.data() + lo, seen.data() + lo, seen_cnt.data() + lo,
                         iid.data() + lo * per + 1 + k, per);
  };
  parallel(pool, n, samples);
  if (host_negatives) parallel(pool, n, negatives);
  b.epoch = r.epoch;
  b.step = step;
  b.n = n;
  b.per = per;
  b.global_n = global_n;
  b.meta = r.meta;
  b.label = labels ? lab.data() : nullptr;
  b.row = row.data();
  b.rank = rank;
}

}  // namespace shardrec
