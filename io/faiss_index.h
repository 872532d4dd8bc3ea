// FAISS indexes of exported vectors (shardrec export --format faiss): inner-product search over
// rows whose FAISS id is the row's dense id. Built with libfaiss-dev only (SHARDREC_HAVE_FAISS in
// the generated config header); without it, writing one is an error that names the package.
#pragma once
#include <cstdint>
#include <string>

namespace shardrec::io {

struct FaissSpec {
  std::string type = "flat";  // flat: exact search; hnsw: a graph (approximate, faster)
  int hnsw_m = 32;            // hnsw: links per node
  int ef_construction = 40;   // hnsw: candidates kept while building
  int ef_search = 64;         // hnsw: candidates kept while searching (stored in the index)
};

bool have_faiss();
// Writes n rows of d floats as a FAISS index (metric: inner product) to path; errors name it.
void write_faiss_index(const std::string& path, const float* rows, int64_t n, int d, const FaissSpec& spec);

}  // namespace shardrec::io
