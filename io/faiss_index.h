// FAISS indexes of exported vectors (shardrec export --format faiss): inner-product search over
// rows whose FAISS id is the row's dense id. Built with libfaiss-dev only (SHARDREC_HAVE_FAISS in
// the generated config header); without it, writing or reading one is an error that names the
// package. recommend --index reads one back (FaissIndex) and takes its candidates from it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shardrec::io {

struct FaissSpec {
  std::string type = "flat";  // flat: exact search; hnsw: a graph; ivf: inverted lists (approximate)
  int hnsw_m = 32;            // hnsw: links per node
  int ef_construction = 40;   // hnsw: candidates kept while building
  int ef_search = 64;         // hnsw: candidates kept while searching (stored in the index)
  int ivf_nlist = 100;        // ivf: lists (k-means centroids of the rows, inner product)
  int ivf_nprobe = 8;         // ivf: lists visited per search (stored in the index)
};

// The seed of IVF's k-means (FAISS's ClusteringParameters::seed): fixed, so the same rows and
// parameters give a byte-identical index file.
constexpr int kIvfSeed = 1234;

bool have_faiss();
// Refuses an ivf spec that cannot index n rows (of `what`, which the message names with the
// option): --ivf-nlist 1..n, --ivf-nprobe 1..nlist. Any other type passes.
void check_ivf(const FaissSpec& spec, int64_t n, const std::string& what);
// Writes n rows of d floats as a FAISS index (metric: inner product) to path; errors name it (and
// the option, for an ivf nlist above n or an nprobe above nlist).
void write_faiss_index(const std::string& path, const float* rows, int64_t n, int d, const FaissSpec& spec);

// An inner-product FAISS index read back from a file, for search. Errors name the file.
class FaissIndex {
 public:
  explicit FaissIndex(const std::string& path);
  ~FaissIndex();
  FaissIndex(const FaissIndex&) = delete;
  FaissIndex& operator=(const FaissIndex&) = delete;

  const std::string& path() const { return path_; }
  int dim() const;
  int64_t rows() const;
  std::string type() const;  // flat, hnsw, ivf (or FAISS's class name for another kind)
  // Search-time parameters over the ones stored in the file (0 keeps the stored one; others are
  // positive, as recommend's options check): an hnsw index's efSearch, an ivf index's nprobe (up to nlist). A value for another type of index is
  // refused, naming the option and the index's type.
  void set_search(int ef_search, int nprobe);
  // The k best rows for one query (dim() floats) by inner product, best first, with their inner
  // products; fewer than k when the index finds fewer (an approximate index may). One query at a
  // time: FAISS then takes the same path for every query, whatever the batch would have been.
  void search(const float* query, int k, std::vector<int64_t>& ids, std::vector<float>& scores) const;

 private:
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardrec::io
