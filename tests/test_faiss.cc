// io/faiss_index.h: the index that export --format faiss writes reads back with FAISS, holds the
// rows under their row numbers with the inner-product metric, and finds what exact search finds
// (flat: the same top K; hnsw: nearly all of it).
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/index_io.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "base/error.h"
#include "io/faiss_index.h"

namespace {

constexpr int kDim = 16, kRows = 2000, kQueries = 50, kK = 10;

std::vector<float> gaussian(size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> z;
  std::vector<float> v(n);
  for (auto& x : v) x = z(g);
  return v;
}

// Exact top K by inner product (score desc, id asc), as ids.
std::vector<int64_t> exact_top(const std::vector<float>& rows, const float* q) {
  std::vector<float> s(kRows, 0);
  for (int i = 0; i < kRows; ++i)
    for (int c = 0; c < kDim; ++c) s[i] += rows[i * kDim + c] * q[c];
  std::vector<int64_t> id(kRows);
  std::iota(id.begin(), id.end(), 0);
  std::partial_sort(id.begin(), id.begin() + kK, id.end(),
                    [&](int64_t a, int64_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
  id.resize(kK);
  return id;
}

// Fraction of the exact top K that the index returns for the queries.
double recall(const std::string& path, const std::vector<float>& rows, const std::vector<float>& queries) {
  std::unique_ptr<faiss::Index> index(faiss::read_index(path.c_str()));
  EXPECT_EQ(index->ntotal, kRows);
  EXPECT_EQ(index->d, kDim);
  EXPECT_EQ(index->metric_type, faiss::METRIC_INNER_PRODUCT);
  std::vector<float> dist(kQueries * kK);
  std::vector<faiss::Index::idx_t> got(kQueries * kK);
  index->search(kQueries, queries.data(), kK, dist.data(), got.data());
  int hit = 0;
  for (int q = 0; q < kQueries; ++q) {
    const auto want = exact_top(rows, &queries[q * kDim]);
    for (int j = 0; j < kK; ++j) hit += std::count(want.begin(), want.end(), got[q * kK + j]) > 0;
  }
  return static_cast<double>(hit) / (kQueries * kK);
}

std::string tmp(const char* name) {
  std::filesystem::create_directories(SHARDREC_TEST_TMP);
  return std::string(SHARDREC_TEST_TMP) + "/" + name;
}

TEST(Faiss, FlatIndexFindsTheExactTopK) {
  const auto rows = gaussian(kRows * kDim, 1), queries = gaussian(kQueries * kDim, 2);
  shardrec::io::FaissSpec spec;
  shardrec::io::write_faiss_index(tmp("flat.faiss"), rows.data(), kRows, kDim, spec);
  EXPECT_EQ(recall(tmp("flat.faiss"), rows, queries), 1.0);
  std::unique_ptr<faiss::Index> index(faiss::read_index(tmp("flat.faiss").c_str()));
  ASSERT_NE(dynamic_cast<faiss::IndexFlatIP*>(index.get()), nullptr);
  std::vector<float> back(kDim);
  index->reconstruct(1234, back.data());  // row 1234 under id 1234
  EXPECT_TRUE(std::equal(back.begin(), back.end(), rows.begin() + 1234 * kDim));
}

TEST(Faiss, HnswIndexKeepsItsParametersAndFindsNearlyAll) {
  const auto rows = gaussian(kRows * kDim, 3), queries = gaussian(kQueries * kDim, 4);
  shardrec::io::FaissSpec spec;
  spec.type = "hnsw";
  spec.hnsw_m = 16;
  spec.ef_construction = 80;
  spec.ef_search = 128;
  shardrec::io::write_faiss_index(tmp("hnsw.faiss"), rows.data(), kRows, kDim, spec);
  std::unique_ptr<faiss::Index> index(faiss::read_index(tmp("hnsw.faiss").c_str()));
  auto* h = dynamic_cast<faiss::IndexHNSWFlat*>(index.get());
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->hnsw.efSearch, 128);
  EXPECT_EQ(h->hnsw.efConstruction, 80);
  EXPECT_GE(recall(tmp("hnsw.faiss"), rows, queries), 0.9);
}

TEST(Faiss, AnUnwritablePathIsAnErrorNamingIt) {
  const auto rows = gaussian(kDim, 5);
  try {
    shardrec::io::write_faiss_index("/nonexistent/dir/x.faiss", rows.data(), 1, kDim, {});
    FAIL() << "no error";
  } catch (const shardrec::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.faiss"), std::string::npos) << e.what();
  }
}

}  // namespace
