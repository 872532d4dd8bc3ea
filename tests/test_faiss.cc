// io/faiss_index.h: the index that export --format faiss writes reads back with FAISS, holds the
// rows under their row numbers with the inner-product metric, and finds what exact search finds
// (flat: the same top K; hnsw and ivf: nearly all of it); ivf keeps its parameters and is
// byte-identical when written twice; FaissIndex (recommend --index) reads one back and searches it.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/index_io.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
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

std::string bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

shardrec::io::FaissSpec ivf(int nlist, int nprobe) {
  shardrec::io::FaissSpec spec;
  spec.type = "ivf";
  spec.ivf_nlist = nlist;
  spec.ivf_nprobe = nprobe;
  return spec;
}

TEST(Faiss, IvfIndexKeepsItsParametersAndFindsNearlyAll) {
  const auto rows = gaussian(kRows * kDim, 6), queries = gaussian(kQueries * kDim, 7);
  shardrec::io::write_faiss_index(tmp("ivf.faiss"), rows.data(), kRows, kDim, ivf(20, 10));
  std::unique_ptr<faiss::Index> index(faiss::read_index(tmp("ivf.faiss").c_str()));
  auto* v = dynamic_cast<faiss::IndexIVFFlat*>(index.get());
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->nlist, 20u);
  EXPECT_EQ(v->nprobe, 10u);
  EXPECT_TRUE(v->is_trained);
  EXPECT_NE(dynamic_cast<faiss::IndexFlatIP*>(v->quantizer), nullptr);  // inner-product centroids
  EXPECT_GE(recall(tmp("ivf.faiss"), rows, queries), 0.9);
  // Every list visited: exact.
  v->nprobe = 20;
  faiss::write_index(v, tmp("ivf-all.faiss").c_str());
  EXPECT_EQ(recall(tmp("ivf-all.faiss"), rows, queries), 1.0);
}

TEST(Faiss, IvfIndexIsByteIdenticalWhenWrittenTwice) {
  const auto rows = gaussian(kRows * kDim, 8);
  shardrec::io::write_faiss_index(tmp("ivf-a.faiss"), rows.data(), kRows, kDim, ivf(32, 4));
  shardrec::io::write_faiss_index(tmp("ivf-b.faiss"), rows.data(), kRows, kDim, ivf(32, 4));
  const std::string a = bytes(tmp("ivf-a.faiss")), b = bytes(tmp("ivf-b.faiss"));
  ASSERT_GT(a.size(), static_cast<size_t>(kRows) * kDim * sizeof(float));
  EXPECT_TRUE(a == b) << "two IVF indexes of the same rows and parameters differ";
  // Other rows train other centroids: the comparison can see a difference.
  const auto other = gaussian(kRows * kDim, 9);
  shardrec::io::write_faiss_index(tmp("ivf-c.faiss"), other.data(), kRows, kDim, ivf(32, 4));
  EXPECT_FALSE(a == bytes(tmp("ivf-c.faiss")));
}

TEST(Faiss, IvfWithMoreListsThanRowsIsRefusedNamingTheOption) {
  const auto rows = gaussian(10 * kDim, 10);
  for (const auto& [spec, option] : {std::pair{ivf(11, 1), "--ivf-nlist"}, std::pair{ivf(5, 6), "--ivf-nprobe"}}) {
    try {
      shardrec::io::write_faiss_index(tmp("ivf-bad.faiss"), rows.data(), 10, kDim, spec);
      ADD_FAILURE() << "no error for " << option;
    } catch (const shardrec::Error& e) {
      EXPECT_NE(std::string(e.what()).find(option), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(shardrec::io::write_faiss_index(tmp("ivf-10.faiss"), rows.data(), 10, kDim, ivf(10, 10)));
}

TEST(Faiss, ReadBackItSearchesOneQueryAtATime) {
  const auto rows = gaussian(kRows * kDim, 11), queries = gaussian(kQueries * kDim, 12);
  shardrec::io::FaissSpec flat;
  shardrec::io::write_faiss_index(tmp("read.faiss"), rows.data(), kRows, kDim, flat);
  const shardrec::io::FaissIndex index(tmp("read.faiss"));
  EXPECT_EQ(index.dim(), kDim);
  EXPECT_EQ(index.rows(), kRows);
  EXPECT_EQ(index.type(), "flat");
  std::vector<int64_t> ids;
  std::vector<float> scores;
  for (int q = 0; q < kQueries; ++q) {
    index.search(&queries[q * kDim], kK, ids, scores);
    EXPECT_EQ(ids, exact_top(rows, &queries[q * kDim]));
    ASSERT_EQ(scores.size(), static_cast<size_t>(kK));
    float want = 0;
    for (int c = 0; c < kDim; ++c) want += rows[ids[0] * kDim + c] * queries[q * kDim + c];
    EXPECT_NEAR(scores[0], want, 1e-4);
    EXPECT_TRUE(std::is_sorted(scores.rbegin(), scores.rend()));
  }
  index.search(queries.data(), kRows + 5, ids, scores);  // more than it holds: all of them
  EXPECT_EQ(ids.size(), static_cast<size_t>(kRows));
  shardrec::io::write_faiss_index(tmp("read-ivf.faiss"), rows.data(), kRows, kDim, ivf(8, 2));
  EXPECT_EQ(shardrec::io::FaissIndex(tmp("read-ivf.faiss")).type(), "ivf");
}

TEST(Faiss, ReadingSomethingElseIsAnErrorNamingTheFile) {
  std::ofstream(tmp("not.faiss")) << "not an index\n";
  for (const std::string& path : {tmp("not.faiss"), tmp("absent.faiss")}) {
    try {
      shardrec::io::FaissIndex index(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const shardrec::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  // An L2 index is refused: its scores are not the model's.
  const auto rows = gaussian(kRows * kDim, 13);
  faiss::IndexFlatL2 l2(kDim);
  l2.add(kRows, rows.data());
  faiss::write_index(&l2, tmp("l2.faiss").c_str());
  try {
    shardrec::io::FaissIndex index(tmp("l2.faiss"));
    ADD_FAILURE() << "L2 index accepted";
  } catch (const shardrec::Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner-product"), std::string::npos) << e.what();
  }
}

}  // namespace
