#include "core/labeled_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace shardrec::metrics {

std::map<std::string, double> labeled_metrics(const LabeledRows& r, std::span<const int> ks,
                                              GaucWeight weight) {
  const size_t n = r.user.size();
  if (r.item.size() != n || r.label.size() != n || r.logit.size() != n)
    throw std::invalid_argument("labeled_metrics: columns of different lengths");
  std::map<std::string, double> out;
  out["auc"] = auc(r.logit, r.label);
  out["logloss"] = n ? log_loss_sum(r.logit, r.label) / static_cast<double>(n) : NAN;
  GaucAccum gauc;
  std::vector<double> ndcg(ks.size(), 0.0);
  double mrr = 0;
  int64_t users = 0;
  std::vector<size_t> order;
  for (size_t b = 0; b < n;) {
    size_t e = b;
    while (e < n && r.user[e] == r.user[b]) ++e;
    const std::span<const float> s(r.logit.data() + b, e - b);
    const std::span<const uint8_t> l(r.label.data() + b, e - b);
    gauc.add_user(s, l, weight);
    const size_t pos = static_cast<size_t>(std::count_if(l.begin(), l.end(), [](uint8_t x) { return x != 0; }));
    if (pos > 0 && pos < l.size()) {
      ++users;
      order.resize(e - b);
      std::iota(order.begin(), order.end(), size_t{0});
      std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        if (s[x] != s[y]) return s[x] > s[y];
        return r.item[b + x] < r.item[b + y];
      });
      for (size_t k = 0; k < order.size(); ++k)
        if (l[order[k]]) {
          mrr += 1.0 / static_cast<double>(k + 1);
          break;
        }
      // Binary labels: gain 2^1 - 1 = 1 for positives, 0 otherwise.
      for (size_t j = 0; j < ks.size(); ++j) {
        const size_t K = static_cast<size_t>(ks[j]);
        double dcg = 0, idcg = 0;
        for (size_t k = 0; k < std::min(K, order.size()); ++k)
          if (l[order[k]]) dcg += 1.0 / std::log2(static_cast<double>(k) + 2.0);
        for (size_t k = 0; k < std::min(K, pos); ++k) idcg += 1.0 / std::log2(static_cast<double>(k) + 2.0);
        ndcg[j] += dcg / idcg;
      }
    }
    b = e;
  }
  out["gauc"] = gauc.value();
  for (size_t j = 0; j < ks.size(); ++j)
    out["ndcg@" + std::to_string(ks[j])] = users ? ndcg[j] / static_cast<double>(users) : NAN;
  out["mrr"] = users ? mrr / static_cast<double>(users) : NAN;
  out["users"] = static_cast<double>(users);
  return out;
}

}  // namespace shardrec::metrics
