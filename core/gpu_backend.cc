#include "core/gpu_backend.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "core/gpu_context.h"
#include "base/rng.h"
#include "base/sampling.h"
#include "dist/cuda_comm.h"
#include "dist/device_embedding.h"
#include "dist/nccl_comm.h"
#include "base/cuda_util.h"
#include "kernels/dense_ops.h"
#include "kernels/sparse_ops.h"

namespace shardrec {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string resolve_device(const std::string& requested) {
  if (requested == "cpu") return "cpu";
  if (requested == "auto") return cuda_device_count() > 0 ? "cuda" : "cpu";
  if (requested == "cuda") {
    if (cuda_device_count() == 0) {
      int n = 0;
      const cudaError_t e = cudaGetDeviceCount(&n);
      fail(std::string("option --device cuda: no GPU is visible to this process (") +
           (e == cudaSuccess ? "0 devices" : cudaGetErrorString(e)) + "); use --device cpu or auto");
    }
    return "cuda";
  }
  fail("option --device: '" + requested + "' (expected cpu, cuda or auto)");
}

namespace {
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}
}  // namespace

int local_rank_count() { return env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("SLURM_NTASKS_PER_NODE", 0)); }

int local_device_index(int rank) {
  const int n = cuda_device_count();
  if (n == 0) return 0;
  int local = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("SLURM_LOCALID", env_int("MPI_LOCALRANKID", rank)));
  return local % n;
}

void gpu_score_topk(const float* users, size_t nu, const float* items, const int64_t* ids, size_t ni, int dim,
                    const std::vector<int64_t>& exclude_ptr, const std::vector<int64_t>& exclude_ids, int k,
                    float* top_score, int64_t* top_id) {
  using shardrec::cuda::DeviceBuffer;
  SHARDREC_CUDA_CHECK(cudaSetDevice(local_device_index(0)));
  shardrec::cuda::Stream s;
  cudaStream_t st = s.get();
  DeviceBuffer<float> du(std::max<size_t>(nu * dim, 1)), di(std::max<size_t>(ni * dim, 1)), ds(std::max<size_t>(nu * k, 1));
  DeviceBuffer<int64_t> dids(std::max<size_t>(ni, 1)), dptr(exclude_ptr.size()), dex(std::max<size_t>(exclude_ids.size(), 1)),
      dtop(std::max<size_t>(nu * k, 1));
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(du.data(), users, nu * dim * sizeof(float), cudaMemcpyHostToDevice, st));
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(di.data(), items, ni * dim * sizeof(float), cudaMemcpyHostToDevice, st));
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(dids.data(), ids, ni * sizeof(int64_t), cudaMemcpyHostToDevice, st));
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(dptr.data(), exclude_ptr.data(), exclude_ptr.size() * 8, cudaMemcpyHostToDevice, st));
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(dex.data(), exclude_ids.data(), exclude_ids.size() * 8, cudaMemcpyHostToDevice, st));
  kernels::cuda::score_topk(du.data(), nu, di.data(), dids.data(), ni, dim, dptr.data(), dex.data(), k, ds.data(),
                            dtop.data(), st);
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(top_score, ds.data(), nu * k * sizeof(float), cudaMemcpyDeviceToHost, st));
  SHARDREC_CUDA_CHECK(cudaMemcpyAsync(top_id, dtop.data(), nu * k * sizeof(int64_t), cudaMemcpyDeviceToHost, st));
  s.sync();
}

namespace {

namespace kc = shardrec::kernels::cuda;
using shardrec::cuda::DeviceBuffer;

class CudaBackend final : public GpuBackend {
 public:
  CudaBackend(const TrainConfig& cfg, MFModel& model, const io::DataShard& data, dist::Comm& host)
      : cfg_(cfg), ctx_(cfg.gpu_comm, host), device_(ctx_.device()), host_(host) {
    user_ = std::make_unique<dist::DeviceEmbedding>(model.user, ctx_.stream());
    item_ = std::make_unique<dist::DeviceEmbedding>(model.item, ctx_.stream());
    if (model.vbpr()) {
      // VBPR: the frozen feature rows live beside the item rows (same sharding, so the item
      // routing serves both); W and b stay on the host, updated there exactly as on the CPU.
      model_ = &model;
      feat_ = std::make_unique<dist::DeviceEmbedding>(*model.features, ctx_.stream());
      blas_ = std::make_unique<kc::Blas>(ctx_.stream());
      gW_ = std::make_unique<dist::ExactGradientSum>(model.W.size(), kVbprFracBits, "vbpr.W");
      gb_ = std::make_unique<dist::ExactGradientSum>(model.b.size(), kVbprFracBits, "vbpr.b");
    }
    // This rank's training rows, once: CSR offsets, items, and each row's user.
    const io::UserSlice& tr = data.train();
    rows_ = static_cast<size_t>(tr.rows());
    row_lo_ = tr.row_lo;
    user_lo_ = tr.user_lo;
    num_items_ = data.info.num_items;
    num_train_ = data.info.rows[0];
    std::vector<int32_t> row_user(rows_);
    for (size_t u = 0; u + 1 < tr.ptr.size(); ++u)
      for (int64_t r = tr.ptr[u]; r < tr.ptr[u + 1]; ++r) row_user[r] = static_cast<int32_t>(u);
    cudaStream_t st = ctx_.stream();
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(ptr_.get(tr.ptr.size()), tr.ptr.data(), tr.ptr.size() * 8, cudaMemcpyHostToDevice, st));
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(item_ids_.get(std::max<size_t>(rows_, 1)), tr.item.data(), rows_ * 4,
                                        cudaMemcpyHostToDevice, st));
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(row_user_.get(std::max<size_t>(rows_, 1)), row_user.data(), rows_ * 4,
                                        cudaMemcpyHostToDevice, st));
    ctx_.sync();
  }

  bool train_epoch(int epoch, int64_t first, Strategy& strategy, dist::ExactSums& loss_sum,
                   const std::function<bool(int64_t)>& after_step) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(device_));
    cudaStream_t st = ctx_.stream();
    const int64_t B = cfg_.batch, S = (num_train_ + B - 1) / B;
    const Permutation perm(static_cast<uint64_t>(num_train_), hash64(cfg_.seed, 0xe90c, epoch));
    const size_t r1 = std::max<size_t>(rows_, 1);
    kc::epoch_order(perm, row_lo_, rows_, B, S, order_ws_, pos_.get(r1), row_.get(r1), bounds_.get(S + 1), st);
    std::vector<int64_t> bounds(S + 1);
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(bounds.data(), bounds_.data(), (S + 1) * 8, cudaMemcpyDeviceToHost, st));
    SHARDREC_CUDA_CHECK(cudaMemsetAsync(failed_.get(1), 0xff, sizeof(int64_t), st));  // -1: none
    ctx_.sync();
    kc::SampleParams sp;
    sp.neg_base = sampling::negative_base(cfg_.seed, epoch);
    sp.num_items = num_items_;
    sp.negatives = cfg_.negatives;
    sp.row_lo = row_lo_;
    sp.user_lo = user_lo_;
    const int per = 1 + cfg_.negatives;
    for (int64_t s = std::max<int64_t>(first, 0); s < S; ++s) {
      const size_t begin = static_cast<size_t>(bounds[s]), n = static_cast<size_t>(bounds[s + 1] - bounds[s]);
      const size_t n1 = std::max<size_t>(n, 1), ni1 = n1 * per;
      kc::build_batch(pos_.data(), row_.data(), begin, n, ptr_.data(), item_ids_.data(), row_user_.data(), sp,
                      uid_.get(n1), iid_.get(ni1), ukey_.get(n1), ikey_.get(ni1), grow_.get(n1), failed_.data(), st);
      const int64_t global_n = std::min<int64_t>(B, num_train_ - s * B);
      run_step(strategy, epoch, s, n, global_n, loss_sum);
      if (after_step && after_step(s)) return false;
    }
    return true;
  }

  // The strategy's passes over the batch now in uid_/iid_/ukey_/ikey_ (n samples).
  void run_step(Strategy& strategy, int epoch, int64_t step, size_t n, int64_t global_n, dist::ExactSums& loss_sum) {
    cudaStream_t st = ctx_.stream();
    const int negs = cfg_.negatives, per = 1 + negs;
    const int d = user_->dim();    // the scoring width: a user row, an item's q vector
    const int de = item_->dim();   // an item's embedding row (d for MF, d / 2 for VBPR)
    const size_t ni = n * per, n1 = std::max<size_t>(n, 1), ni1 = std::max<size_t>(ni, 1);
    // A sample runs on its user's owner: user rows never travel.
    user_->route(ctx_.comm(), uid_.data(), n, /*local_only=*/true, ur_);
    item_->route(ctx_.comm(), iid_.data(), ni, /*local_only=*/false, ir_);
    float* U = U_.get(n1 * d);
    float* I = I_.get(ni1 * de);
    float* gU = gU_.get(n1 * d);
    float* gI = gI_.get(ni1 * de);
    double* loss = loss_.get(n1);
    double* loss_h = loss_h_.get(n1 + 1);
    const bool bpr = cfg_.loss == "bpr";
    // VBPR: q = [e, W f + b] per item occurrence, and its gradient.
    const int F = feat_ ? feat_->dim() : 0;
    const size_t nip = std::max(kc::padded_rows(ni), kc::kRows);
    float* Fb = feat_ ? F_.get(nip * F) : nullptr;
    float* Q = feat_ ? Q_.get(nip * d) : I;
    float* gQ = feat_ ? gQ_.get(ni1 * d) : gI;
    bool features_here = false;

    FunctionOps ops;
    ops.fb = [&](float scale, bool record) {
      user_->gather(ctx_.comm(), ur_, U);
      item_->gather(ctx_.comm(), ir_, I);
      if (feat_) {
        // Feature rows never change: one transfer per step, through the item routing.
        if (!features_here) feat_->gather(ctx_.comm(), ir_, Fb);
        features_here = true;
        item_vectors(I, Fb, ni, Q);
      }
      kc::MfParams p;
      p.dim = d;
      p.reg_dim = de;
      p.per = per;
      p.negs = negs;
      p.bpr = bpr;
      // The same floats as the CPU step (MFModel::pass).
      p.inv = scale / static_cast<float>(global_n * (bpr ? negs : per));
      p.reg = scale * cfg_.l2 / static_cast<float>(global_n);
      p.l2 = cfg_.l2;
      kc::mf_forward_backward(U, Q, n, p, gU, gQ, loss, st);
      if (feat_) projection_grads(gQ, Fb, ni, gI);
      SHARDREC_CUDA_CHECK(cudaMemcpyAsync(loss_h, loss, n * sizeof(double), cudaMemcpyDeviceToHost, st));
      SHARDREC_CUDA_CHECK(cudaMemcpyAsync(loss_h + n, failed_.data(), sizeof(int64_t), cudaMemcpyDeviceToHost, st));
      ctx_.sync();
      int64_t failed_row = 0;
      std::memcpy(&failed_row, loss_h + n, sizeof failed_row);
      if (failed_row >= 0)
        fail("dataset " + cfg_.data + ": a user of training row " + std::to_string(failed_row) +
             " interacted with every item, so no negative item exists");
      for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(loss_h[i])) {
          int64_t row = -1;
          SHARDREC_CUDA_CHECK(cudaMemcpy(&row, grow_.data() + i, sizeof row, cudaMemcpyDeviceToHost));
          fail("training diverged: the loss of dataset row " + std::to_string(row) + " is " + std::to_string(loss_h[i]) +
               " at epoch " + std::to_string(epoch) + " step " + std::to_string(step) + " on rank " +
               std::to_string(host_.rank()) + " (GPU backend; lower the learning rate?)");
        }
        if (record) loss_sum.add(0, loss_h[i]);
      }
    };
    ops.ap = [&] {
      // Order keys are epoch positions (users) and position x per + k (items): with these bounds
      // the owners sort (row, key) packed in one radix sort instead of two stable ones.
      const uint64_t users_bound = static_cast<uint64_t>(num_train_);
      user_->apply(ctx_.comm(), ur_, ukey_.data(), gU, users_bound);
      item_->apply(ctx_.comm(), ir_, ikey_.data(), gI, users_bound * static_cast<uint64_t>(per));
      if (feat_) model_->apply_dense(host_, *gW_, *gb_);
    };
    strategy.step(step, ops);
  }

  // VBPR's item vectors q = [e, W f + b] for m occurrences (MFModel::item_vectors), W and b from
  // the host model (updated there after every step).
  void item_vectors(const float* E, const float* Fb, size_t m, float* Q) {
    cudaStream_t st = ctx_.stream();
    const int de = item_->dim(), d = 2 * de, F = feat_->dim();
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(W_.get(model_->W.size()), model_->W.data(), model_->W.size() * sizeof(float),
                                        cudaMemcpyHostToDevice, st));
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(b_.get(de), model_->b.data(), de * sizeof(float), cudaMemcpyHostToDevice, st));
    kc::copy_columns(E, de, Q, d, m, de, st);
    kc::linear_forward(*blas_, Fb, F, m, F, W_.data(), b_.data(), de, /*relu=*/false, Q + de, d);
    ctx_.sync();  // the host W and b may change once this returns
  }

  // dL/dq -> the embedding rows' gradient (first half) and the projection's exact sums (second
  // half times the features), as the CPU step forms them.
  void projection_grads(const float* gQ, const float* Fb, size_t m, float* gI) {
    cudaStream_t st = ctx_.stream();
    const int de = item_->dim(), d = 2 * de, F = feat_->dim();
    kc::copy_columns(gQ, d, gI, de, m, de, st);
    const size_t nw = model_->W.size();
    int64_t* acc = acc_.get(nw + de);
    int* bad = bad_.get(1);
    SHARDREC_CUDA_CHECK(cudaMemsetAsync(acc, 0, (nw + de) * sizeof(int64_t), st));
    SHARDREC_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int), st));
    kc::fixed_outer_sum(gQ + de, d, de, Fb, F, F, m, gW_->frac_bits(), gW_->limit(), acc, bad, st,
                        kc::FixedRounding::kFloatProduct);
    kc::fixed_outer_sum(gQ + de, d, de, nullptr, 0, 1, m, gb_->frac_bits(), gb_->limit(), acc + nw, bad, st,
                        kc::FixedRounding::kFloatProduct);
    int bad_h = 0;
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(gW_->data(), acc, nw * sizeof(int64_t), cudaMemcpyDeviceToHost, st));
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(gb_->data(), acc + nw, de * sizeof(int64_t), cudaMemcpyDeviceToHost, st));
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(&bad_h, bad, sizeof(int), cudaMemcpyDeviceToHost, st));
    ctx_.sync();
    if (bad_h)
      fail("training diverged: a gradient of vbpr.W or vbpr.b is outside the exact-sum range (NaN, Inf or a "
           "diverging step) on rank " + std::to_string(host_.rank()) + " (GPU backend; lower the learning rate)");
  }

  void download(MFModel& model) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(device_));
    user_->download(model.user);
    item_->download(model.item);
  }

  void download_state(MFModel& model) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(device_));
    user_->download_state(model.user);
    item_->download_state(model.item);
  }

  void upload_state(const MFModel& model) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(device_));
    user_->upload_state(model.user);
    item_->upload_state(model.item);
  }

  std::string describe() const override { return ctx_.describe(); }

 private:
  TrainConfig cfg_;
  GpuContext ctx_;
  int device_;
  dist::Comm& host_;
  size_t rows_ = 0;
  int64_t row_lo_ = 0, user_lo_ = 0, num_items_ = 0, num_train_ = 0;
  DeviceBuffer<int64_t> ptr_, bounds_, grow_, failed_;
  DeviceBuffer<int32_t> item_ids_, row_user_;
  DeviceBuffer<uint64_t> pos_;
  DeviceBuffer<uint32_t> row_;
  kc::Workspace order_ws_;
  std::unique_ptr<dist::DeviceEmbedding> user_, item_;
  dist::DeviceRouting ur_, ir_;
  // VBPR only.
  MFModel* model_ = nullptr;
  std::unique_ptr<dist::DeviceEmbedding> feat_;
  std::unique_ptr<kc::Blas> blas_;
  std::unique_ptr<dist::ExactGradientSum> gW_, gb_;
  DeviceBuffer<float> F_, Q_, gQ_, W_, b_;
  DeviceBuffer<int64_t> acc_;
  DeviceBuffer<int> bad_;
  DeviceBuffer<int64_t> uid_, iid_;
  DeviceBuffer<uint64_t> ukey_, ikey_;
  DeviceBuffer<float> U_, I_, gU_, gI_;
  DeviceBuffer<double> loss_;
  shardrec::cuda::PinnedBuffer<double> loss_h_;
};

}  // namespace

std::unique_ptr<GpuBackend> GpuBackend::create(const TrainConfig& cfg, MFModel& model, const io::DataShard& data,
                                               dist::Comm& comm) {
  resolve_device("cuda");
  return std::make_unique<CudaBackend>(cfg, model, data, comm);
}

}  // namespace shardrec
