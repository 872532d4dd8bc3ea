#include "dist/device_embedding.h"

#include <cmath>

#include "base/error.h"

namespace shardrec::dist {

namespace kc = shardrec::kernels::cuda;

DeviceEmbedding::DeviceEmbedding(const ShardedEmbedding& host, cudaStream_t stream)
    : name_(host.name()),
      dim_(host.dim()),
      rows_(host.rows()),
      local_rows_(host.local_rows()),
      rank_(host.rank()),
      sharding_(host.sharding()),
      st_(stream),
      host_opt_(host.optimizer().config(), 0, host.dim()) {
  const size_t n = static_cast<size_t>(local_rows_) * dim_;
  const size_t cells = std::max<size_t>(n, 1);
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(w_.get(cells), host.local_data().data(), n * sizeof(float),
                                      cudaMemcpyHostToDevice, st_));
  switch (host.optimizer().config().kind) {
    case OptimizerConfig::Kind::kSgd: break;
    case OptimizerConfig::Kind::kAdagrad: {
      std::vector<float> acc(std::max<int64_t>(local_rows_, 1), host.optimizer().config().adagrad_init);
      // Stream-ordered, and acc outlives the copy (synchronised below).
      SHARDREC_CUDA_CHECK(cudaMemcpyAsync(v_.get(acc.size()), acc.data(), acc.size() * sizeof(float),
                                          cudaMemcpyHostToDevice, st_));
      SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st_));
      break;
    }
    default:
      SHARDREC_CUDA_CHECK(cudaMemsetAsync(m_.get(cells), 0, cells * sizeof(float), st_));
      SHARDREC_CUDA_CHECK(cudaMemsetAsync(v_.get(cells), 0, cells * sizeof(float), st_));
  }
  if (host.optimizer().step() != 0)
    fail("table " + name_ + ": the GPU backend starts from a fresh optimizer (this one has taken " +
         std::to_string(host.optimizer().step()) + " steps)");
  if (sharding_.kind() == Sharding::Kind::kRange) {
    const auto& b = sharding_.bounds();
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(bounds_.get(b.size()), b.data(), b.size() * sizeof(int64_t),
                                        cudaMemcpyHostToDevice, st_));
  }
  if (local_rows_ >= (int64_t{1} << 48)) fail("table " + name_ + ": a shard above 2^48 rows");
  SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st_));
}

size_t DeviceEmbedding::memory_bytes() const {
  return (w_.capacity() + m_.capacity() + v_.capacity()) * sizeof(float);
}

void DeviceEmbedding::route(Comm& comm, const int64_t* ids, size_t n, bool local_only, DeviceRouting& r) {
  const int world = comm.size();
  r.num_ids = n;
  r.direct = local_only || world == 1;
  kc::ShardingView view;
  view.kind = sharding_.kind();
  view.world = sharding_.world();
  view.table_owner = sharding_.table_owner();
  view.rows = rows_;
  view.bounds = bounds_.data();
  int* bad = bad_.get(1);
  SHARDREC_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int), st_));
  const size_t cap = std::max<size_t>(n, 1);
  kc::owner_local(ids, n, view, r.owner.get(cap), r.local.get(cap), r.key.get(cap), bad, st_);
  int bad_h = 0;
  if (r.direct) {
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(&bad_h, bad, sizeof(int), cudaMemcpyDeviceToHost, st_));
    SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st_));
    if (bad_h) fail("table " + name_ + ": an id outside its " + std::to_string(rows_) + " rows (GPU route)");
    // Local-only ids: no collective here, exactly like the CPU table.
    return;
  }
  r.uniq_count.assign(world, 0);
  r.id_count.assign(world, 0);
  uint32_t* counts = r.counts.get(2 * static_cast<size_t>(world));
  const size_t uniq = kc::route_unique(r.key.data(), n, world, ws_, r.sorted_key.get(cap), r.perm.get(cap),
                                       r.slot.get(cap), r.uniq_local.get(cap), counts, counts + world, st_);
  (void)uniq;
  uint32_t* hc = host_counts_.get(2 * static_cast<size_t>(world));
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(hc, counts, 2 * world * sizeof(uint32_t), cudaMemcpyDeviceToHost, st_));
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(&bad_h, bad, sizeof(int), cudaMemcpyDeviceToHost, st_));
  SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st_));
  if (bad_h) fail("table " + name_ + ": an id outside its " + std::to_string(rows_) + " rows (GPU route)");
  // One exchange of counts: distinct rows we ask for (high half) and gradient records we will
  // send (low half), so apply() needs no exchange of counts.
  std::vector<uint64_t> send(world), recv(world);
  for (int k = 0; k < world; ++k) {
    r.uniq_count[k] = hc[k];
    r.id_count[k] = hc[world + k];
    send[k] = (r.uniq_count[k] << 32) | r.id_count[k];
  }
  comm.alltoall_u64(send.data(), recv.data());
  r.serve_count.resize(world);
  r.incoming.resize(world);
  std::vector<size_t> sb(world), sd(world), rb(world), rd(world);
  size_t st = 0, rt = 0;
  for (int k = 0; k < world; ++k) {
    r.serve_count[k] = recv[k] >> 32;
    r.incoming[k] = recv[k] & 0xffffffffu;
    sb[k] = r.uniq_count[k] * sizeof(int64_t); sd[k] = st; st += sb[k];
    rb[k] = r.serve_count[k] * sizeof(int64_t); rd[k] = rt; rt += rb[k];
  }
  comm.alltoallv(r.uniq_local.data(), sb.data(), sd.data(), r.serve.get(std::max<size_t>(rt / 8, 1)), rb.data(),
                 rd.data(), Memory::kDevice);
}

void DeviceEmbedding::gather(Comm& comm, const DeviceRouting& r, float* out) {
  if (r.direct) {
    kc::gather_rows(w_.data(), dim_, r.local.data(), r.num_ids, out, st_);
    return;
  }
  const int world = comm.size();
  const size_t rowb = dim_ * sizeof(float);
  std::vector<size_t> sb(world), sd(world), rb(world), rd(world);
  size_t st = 0, rt = 0;
  for (int k = 0; k < world; ++k) {
    sb[k] = r.serve_count[k] * rowb; sd[k] = st; st += sb[k];
    rb[k] = r.uniq_count[k] * rowb; rd[k] = rt; rt += rb[k];
  }
  float* send = send_rows_.get(std::max<size_t>(st / sizeof(float), 1));
  float* recv = recv_rows_.get(std::max<size_t>(rt / sizeof(float), 1));
  kc::gather_rows(w_.data(), dim_, r.serve.data(), st / rowb, send, st_);
  SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st_));
  comm.alltoallv(send, sb.data(), sd.data(), recv, rb.data(), rd.data(), Memory::kDevice);
  kc::expand_rows(recv, dim_, r.slot.data(), r.num_ids, out, st_);
}

void DeviceEmbedding::apply(Comm& comm, const DeviceRouting& r, const uint64_t* keys, const float* grads,
                            uint64_t key_bound) {
  host_opt_.begin_step();
  const OptimizerConfig& c = host_opt_.config();
  kc::OptimizerParams p;
  p.kind = c.kind;
  p.lr = c.lr;
  p.beta1 = c.beta1;
  p.beta2 = c.beta2;
  p.eps = c.eps;
  p.weight_decay = c.weight_decay;
  p.adam_step = host_opt_.adam_step();
  p.adam_bc2_sqrt = host_opt_.adam_bc2_sqrt();
  reduce(comm, r, keys, grads, p, key_bound, false);
}

void DeviceEmbedding::reduce(Comm& comm, const DeviceRouting& r, const uint64_t* keys, const float* grads,
                             const kc::OptimizerParams& p, uint64_t key_bound, bool save_candidate) {
  const size_t rec = kc::record_bytes(dim_);
  auto owner_side = [&](const char* recs, size_t n) {
    if (save_candidate) {  // room for one touched row per record
      cand_cap_ = n;
      cand_rows_.get(std::max<size_t>(n, 1));
      cand_orig_.get(std::max<size_t>(n * dim_, 1));
      cand_delta_.get(std::max<size_t>(n * dim_, 1));
      cand_count_.get(1);
    }
    const kc::CandidateRows c = saved_candidate();
    kc::reduce_apply(recs, n, dim_, local_rows_, w_.data(), m_.data(), v_.data(), p, ws_, st_, key_bound,
                     save_candidate ? &c : nullptr);
  };
  if (r.direct) {
    char* recs = send_rec_.get(std::max<size_t>(r.num_ids * rec, 1));
    kc::pack_records_direct(r.local.data(), keys, grads, dim_, r.num_ids, recs, st_);
    owner_side(recs, r.num_ids);
    return;
  }
  const int world = comm.size();
  std::vector<size_t> sb(world), sd(world), rb(world), rd(world);
  size_t st = 0, rt = 0;
  for (int k = 0; k < world; ++k) {
    sb[k] = r.id_count[k] * rec; sd[k] = st; st += sb[k];
    rb[k] = r.incoming[k] * rec; rd[k] = rt; rt += rb[k];
  }
  char* send = send_rec_.get(std::max<size_t>(st, 1));
  char* recv = recv_rec_.get(std::max<size_t>(rt, 1));
  // Records leave in (owner, row) order: each owner's records are one contiguous run.
  kc::pack_records(r.perm.data(), r.local.data(), keys, grads, dim_, r.num_ids, send, st_);
  SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st_));
  comm.alltoallv(send, sb.data(), sd.data(), recv, rb.data(), rd.data(), Memory::kDevice);
  owner_side(recv, rt / rec);
}

kc::OptimizerParams DeviceEmbedding::candidate_params(RowMove move, float lr, bool fresh_adam) const {
  const OptimizerConfig& c = host_opt_.config();
  kc::OptimizerParams p;
  p.move = move;
  p.fresh_adam = fresh_adam;
  p.lr = lr;
  p.beta1 = c.beta1;
  p.beta2 = c.beta2;
  p.eps = c.eps;
  // ig::CandidateStep::delta's factors, formed as it forms them.
  p.adam_step = static_cast<float>(lr / (1.0 - static_cast<double>(c.beta1)));
  p.adam_bc2_sqrt = static_cast<float>(std::sqrt(1.0 - static_cast<double>(c.beta2)));
  return p;
}

void DeviceEmbedding::candidate(Comm& comm, const DeviceRouting& r, const uint64_t* keys, const float* grads,
                                float lr, bool fresh_adam, float* d_out) {
  reduce(comm, r, keys, grads, candidate_params(RowMove::kCandidate, lr, fresh_adam), 0, true);
  // The owners' rows now hold d: one gather brings every requester the d rows of its ids; then
  // the rows get their old values back.
  gather(comm, r, d_out);
  kc::restore_rows(saved_candidate(), dim_, w_.data(), st_, cand_cap_);
}

kc::CandidateRows DeviceEmbedding::saved_candidate() {
  return {cand_rows_.data(), cand_orig_.data(), cand_delta_.data(), cand_count_.data()};
}

void DeviceEmbedding::commit_candidate(float sign) {
  kc::commit_rows(saved_candidate(), dim_, sign, w_.data(), st_, cand_cap_);
}

void DeviceEmbedding::fresh_step(Comm& comm, const DeviceRouting& r, const uint64_t* keys, const float* grads,
                                 float lr) {
  reduce(comm, r, keys, grads, candidate_params(RowMove::kFreshStep, lr, true), 0, false);
}

void DeviceEmbedding::reset_optimizer() {
  const OptimizerConfig& c = host_opt_.config();
  host_opt_ = RowOptimizer(c, 0, dim_);
  const size_t cells = std::max<size_t>(static_cast<size_t>(local_rows_) * dim_, 1);
  if (c.kind == OptimizerConfig::Kind::kAdagrad) {
    std::vector<float> acc(std::max<int64_t>(local_rows_, 1), c.adagrad_init);
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(v_.data(), acc.data(), acc.size() * sizeof(float), cudaMemcpyHostToDevice, st_));
    SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st_));
  } else if (c.kind != OptimizerConfig::Kind::kSgd) {
    SHARDREC_CUDA_CHECK(cudaMemsetAsync(m_.data(), 0, cells * sizeof(float), st_));
    SHARDREC_CUDA_CHECK(cudaMemsetAsync(v_.data(), 0, cells * sizeof(float), st_));
  }
}

void DeviceEmbedding::download(ShardedEmbedding& host) const {
  const size_t n = static_cast<size_t>(local_rows_) * dim_;
  SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st_));
  if (n) SHARDREC_CUDA_CHECK(cudaMemcpy(host.local_data().data(), w_.data(), n * sizeof(float), cudaMemcpyDeviceToHost));
}

}  // namespace shardrec::dist

namespace shardrec::dist {

namespace {
// The optimizer state the host table keeps (RowOptimizer's layout): Adam's m and v are
// local_rows x dim, Adagrad's accumulators one per row in v; SGD keeps none.
void state_sizes(const OptimizerConfig& c, int64_t local_rows, int dim, size_t* m, size_t* v) {
  const OptimizerTraits& t = traits_of(c.kind);
  const size_t cells = static_cast<size_t>(local_rows) * dim;
  *m = t.m_name ? cells : 0;
  *v = t.v_name ? (t.v_per_row ? static_cast<size_t>(local_rows) : cells) : 0;
}
}  // namespace

void DeviceEmbedding::download_state(ShardedEmbedding& host) const {
  download(host);  // the rows (waits for the stream's work)
  RowOptimizer& o = host.optimizer();
  size_t nm = 0, nv = 0;
  state_sizes(host_opt_.config(), local_rows_, dim_, &nm, &nv);
  if (o.state_m().size() != nm || o.state_v().size() != nv)
    fail("table " + name_ + ": the host optimizer state does not match the device's (" +
         std::to_string(o.state_m().size()) + "/" + std::to_string(o.state_v().size()) + " values, expected " +
         std::to_string(nm) + "/" + std::to_string(nv) + ")");
  if (nm) SHARDREC_CUDA_CHECK(cudaMemcpy(o.state_m().data(), m_.data(), nm * sizeof(float), cudaMemcpyDeviceToHost));
  if (nv) SHARDREC_CUDA_CHECK(cudaMemcpy(o.state_v().data(), v_.data(), nv * sizeof(float), cudaMemcpyDeviceToHost));
  o.set_step(host_opt_.step());
}

void DeviceEmbedding::upload_state(const ShardedEmbedding& host) {
  if (host.local_rows() != local_rows_ || host.dim() != dim_ ||
      host.optimizer().config().kind != host_opt_.config().kind)
    fail("table " + name_ + ": the host table's shape or optimizer differs from the device's");
  const RowOptimizer& o = host.optimizer();
  size_t nm = 0, nv = 0;
  state_sizes(host_opt_.config(), local_rows_, dim_, &nm, &nv);
  if (o.state_m().size() != nm || o.state_v().size() != nv)
    fail("table " + name_ + ": the host optimizer state has " + std::to_string(o.state_m().size()) + "/" +
         std::to_string(o.state_v().size()) + " values, the device expects " + std::to_string(nm) + "/" +
         std::to_string(nv));
  // Stream-ordered after the work that still reads the old state; the host vectors must stay
  // as they are until the copies are done (synchronised below).
  const size_t n = static_cast<size_t>(local_rows_) * dim_;
  if (n)
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(w_.data(), host.local_data().data(), n * sizeof(float), cudaMemcpyHostToDevice, st_));
  if (nm) SHARDREC_CUDA_CHECK(cudaMemcpyAsync(m_.data(), o.state_m().data(), nm * sizeof(float), cudaMemcpyHostToDevice, st_));
  if (nv) SHARDREC_CUDA_CHECK(cudaMemcpyAsync(v_.data(), o.state_v().data(), nv * sizeof(float), cudaMemcpyHostToDevice, st_));
  SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st_));
  host_opt_.set_step(o.step());
}

}  // namespace shardrec::dist
