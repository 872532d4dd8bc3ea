#include "io/faiss_index.h"

#include <exception>
#include <typeinfo>

#include "base/error.h"
#include "shardrec_config.h"

#if SHARDREC_HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/index_io.h>
#endif

namespace shardrec::io {

#if !SHARDREC_HAVE_FAISS
namespace {

[[noreturn]] void no_faiss(const std::string& path) {
  fail(path + ": this shardrec was built without FAISS (Debian: libfaiss-dev, then rebuild; "
       "launch/install-deps.sh installs it)");
}

}  // namespace
#endif

bool have_faiss() { return SHARDREC_HAVE_FAISS != 0; }

void check_ivf(const FaissSpec& spec, int64_t n, const std::string& what) {
  if (spec.type != "ivf") return;
  if (spec.ivf_nlist < 1 || spec.ivf_nlist > n) {
    std::string msg = what;
    msg += ": option --ivf-nlist ";
    msg += std::to_string(spec.ivf_nlist);
    msg += ": an IVF index of ";
    msg += std::to_string(n);
    msg += " rows has 1 to ";
    msg += std::to_string(n);
    msg += " lists (at most one a row)";
    fail(msg);
  }
  if (spec.ivf_nprobe < 1 || spec.ivf_nprobe > spec.ivf_nlist) {
    std::string msg = what;
    msg += ": option --ivf-nprobe ";
    msg += std::to_string(spec.ivf_nprobe);
    msg += ": must be 1 to --ivf-nlist (";
    msg += std::to_string(spec.ivf_nlist);
    msg += "), the lists there are to visit";
    fail(msg);
  }
}

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
    } else if (spec.type == "ivf") {
      check_ivf(spec, n, path);
      faiss::IndexFlatIP quantizer(d);
      faiss::IndexIVFFlat index(&quantizer, d, static_cast<size_t>(spec.ivf_nlist), faiss::METRIC_INNER_PRODUCT);
      index.cp.seed = kIvfSeed;
      index.cp.verbose = false;
      index.verbose = false;
      index.train(n, rows);
      index.add(n, rows);  // ids 0..n-1: the row numbers
      index.nprobe = static_cast<size_t>(spec.ivf_nprobe);
      faiss::write_index(&index, path.c_str());
    } else {
      fail("FAISS index type '" + spec.type + "' is not one of flat, hnsw, ivf");
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // faiss::FaissException
    fail(path + ": FAISS: " + e.what());
  }
#else
  (void)rows, (void)n, (void)d, (void)spec;
  no_faiss(path);
#endif
}

#if SHARDREC_HAVE_FAISS
struct FaissIndex::Impl {
  std::unique_ptr<faiss::Index> index;
};
#else
struct FaissIndex::Impl {};
#endif

FaissIndex::FaissIndex(const std::string& path) : path_(path), impl_(std::make_unique<Impl>()) {
#if SHARDREC_HAVE_FAISS
  try {
    impl_->index.reset(faiss::read_index(path.c_str()));
  } catch (const std::exception& e) {
    fail(path + ": not a FAISS index that can be read (FAISS: " + e.what() + ")");
  }
  if (impl_->index->metric_type != faiss::METRIC_INNER_PRODUCT)
    fail(path + ": the FAISS index does not use the inner-product metric (shardrec export --format faiss "
                "writes one that does)");
#else
  no_faiss(path);
#endif
}

FaissIndex::~FaissIndex() = default;

#if SHARDREC_HAVE_FAISS
int FaissIndex::dim() const { return impl_->index->d; }
int64_t FaissIndex::rows() const { return impl_->index->ntotal; }

std::string FaissIndex::type() const {
  const faiss::Index* i = impl_->index.get();
  if (dynamic_cast<const faiss::IndexFlat*>(i)) return "flat";
  if (dynamic_cast<const faiss::IndexHNSW*>(i)) return "hnsw";
  if (dynamic_cast<const faiss::IndexIVF*>(i)) return "ivf";
  return typeid(*i).name();
}

void FaissIndex::set_search(int ef_search, int nprobe) {
  if (ef_search != 0) {
    auto* h = dynamic_cast<faiss::IndexHNSW*>(impl_->index.get());
    if (!h) fail("option --ef-search: " + path_ + " is a " + type() + " index; efSearch is an hnsw index's parameter");
    h->hnsw.efSearch = ef_search;
  }
  if (nprobe != 0) {
    auto* v = dynamic_cast<faiss::IndexIVF*>(impl_->index.get());
    if (!v) fail("option --nprobe: " + path_ + " is a " + type() + " index; nprobe is an ivf index's parameter");
    if (static_cast<size_t>(nprobe) > v->nlist)
      fail("option --nprobe " + std::to_string(nprobe) + ": must be 1 to the index's " + std::to_string(v->nlist) +
           " lists (" + path_ + ")");
    v->nprobe = static_cast<size_t>(nprobe);
  }
}

void FaissIndex::search(const float* query, int k, std::vector<int64_t>& ids, std::vector<float>& scores) const {
  ids.assign(static_cast<size_t>(k), -1);
  scores.assign(static_cast<size_t>(k), 0);
  std::vector<faiss::Index::idx_t> got(static_cast<size_t>(k), -1);
  try {
    impl_->index->search(1, query, k, scores.data(), got.data());
  } catch (const std::exception& e) {
    fail(path_ + ": FAISS search: " + e.what());
  }
  size_t n = 0;
  for (size_t j = 0; j < got.size(); ++j)
    if (got[j] >= 0) {
      ids[n] = got[j];
      scores[n] = scores[j];
      ++n;
    }
  ids.resize(n);
  scores.resize(n);
}
#else
int FaissIndex::dim() const { return 0; }
int64_t FaissIndex::rows() const { return 0; }
std::string FaissIndex::type() const { return {}; }
void FaissIndex::set_search(int, int) { no_faiss(path_); }
void FaissIndex::search(const float*, int, std::vector<int64_t>&, std::vector<float>&) const { no_faiss(path_); }
#endif

}  // namespace shardrec::io
