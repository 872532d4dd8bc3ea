#include "io/faiss_index.h"

#include <exception>

#include "base/error.h"
#include "shardrec_config.h"

#if SHARDREC_HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/index_io.h>
#endif

namespace shardrec::io {

bool have_faiss() { return SHARDREC_HAVE_FAISS != 0; }

void write_faiss_index(const std::string& path, const float* rows, int64_t n, int d, const FaissSpec& spec) {
#if SHARDREC_HAVE_FAISS
  try {
    if (spec.type == "flat") {
      faiss::IndexFlatIP index(d);
      index.add(n, rows);
      faiss::write_index(&index, path.c_str());
    } else if (spec.type == "hnsw") {
      faiss::IndexHNSWFlat index(d, spec.hnsw_m, faiss::METRIC_INNER_PRODUCT);
      index.hnsw.efConstruction = spec.ef_construction;
      index.hnsw.efSearch = spec.ef_search;
      index.add(n, rows);
      faiss::write_index(&index, path.c_str());
    } else {
      fail("FAISS index type '" + spec.type + "' is not one of flat, hnsw");
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // faiss::FaissException
    fail(path + ": FAISS: " + e.what());
  }
#else
  (void)rows, (void)n, (void)d, (void)spec;
  fail(path + ": this shardrec was built without FAISS (Debian: libfaiss-dev, then rebuild; "
       "launch/install-deps.sh installs it)");
#endif
}

}  // namespace shardrec::io
