#include "core/gpu_pointwise.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstring>

#include "base/error.h"
#include "core/gpu_backend.h"
#include "core/gpu_context.h"
#include "core/inverse_gradient.h"
#include "dist/device_embedding.h"
#include "base/cuda_util.h"
#include "kernels/dense_ops.h"
#include "kernels/ncf_ops.h"
#include "kernels/sparse_ops.h"

namespace shardrec {

namespace {

namespace kc = shardrec::kernels::cuda;
using shardrec::cuda::DeviceBuffer;
using shardrec::cuda::PinnedBuffer;

constexpr double kMaxAbs = 64.0;  // core/ncf_model.cc: beyond this a fixed-point sum could overflow

class CudaPointwise final : public GpuPointwise, public MetaStepOps {
 public:
  CudaPointwise(const TrainConfig& cfg, NcfModel& model, const io::DataShard& data, dist::Comm& host)
      : cfg_(cfg), model_(model), ctx_(cfg.gpu_comm, host), blas_(ctx_.stream()) {
    // This rank's training rows (CSR by local user), for the unlabeled draws.
    const io::UserSlice& tr = data.train();
    num_items_ = data.info.num_items;
    upload(tr.ptr.data(), ptr_.get(tr.ptr.size()), tr.ptr.size());
    upload(tr.item.data(), items_.get(std::max<size_t>(tr.item.size(), 1)), tr.item.size());
    ctx_.sync();
    user_ = std::make_unique<dist::DeviceEmbedding>(model.user, ctx_.stream());
    item_ = std::make_unique<dist::DeviceEmbedding>(model.item, ctx_.stream());
    nd_ = model.dense.size();
    g_ = model.gmf_dim();
    m_ = model.mlp_dim();
    R_ = model.row_dim();
    pin_ = model.pred().in;
    max_in_ = 2 * m_;
    upload_dense(model.dense.data(), w_.get(nd_));
    gd_.resize(nd_);
    gd2_.resize(nd_);
    gdense_.resize(nd_);
  }

  std::string describe() const override { return ctx_.describe(); }

  void begin_step(int epoch, const std::vector<int64_t>& uid, const std::vector<uint64_t>& ukey,
                  const std::vector<int64_t>& iid, const std::vector<uint64_t>& ikey, const std::vector<uint8_t>& lab,
                  const std::vector<int64_t>& grow, const std::vector<int32_t>& user, int per) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(ctx_.device()));
    cudaStream_t st = ctx_.stream();
    n_ = uid.size();
    per_ = per;
    const size_t n1 = std::max<size_t>(n_, 1), ni1 = n1 * per;
    upload(uid.data(), uid_.get(n1), n_);
    upload(ukey.data(), ukey_.get(n1), n_);
    upload(iid.data(), iid_.get(ni1), n_ * per);
    upload(ikey.data(), ikey_.get(ni1), n_ * per);
    upload(lab.data(), lab_.get(n1), n_);
    upload(grow.data(), grow_.get(n1), n_);
    upload(user.data(), user_local_.get(n1), n_);
    int64_t* failed = failed_.get(1);
    SHARDREC_CUDA_CHECK(cudaMemsetAsync(failed, 0xff, sizeof(int64_t), st));  // -1: none
    kc::draw_unlabeled(grow_.data(), user_local_.data(), n_, per, ptr_.data(), items_.data(), num_items_, cfg_.seed,
                       epoch, iid_.data(), failed, st);
    int64_t failed_row = -1;
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(&failed_row, failed, sizeof failed_row, cudaMemcpyDeviceToHost, st));
    // The uploads come from pageable vectors the caller may change: finish them first.
    SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st));
    if (failed_row >= 0)
      fail("dataset " + cfg_.data + ": the user of training row " + std::to_string(failed_row) +
           " rated every item, so no unlabeled item exists");
    // A row runs on its user's owner: user rows never travel.
    user_->route(ctx_.comm(), uid_.data(), n_, /*local_only=*/true, ur_);
    item_->route(ctx_.comm(), iid_.data(), n_ * per, /*local_only=*/false, ir_);
  }

  MetaStepOps& ops(double c_lab, double c_unl, dist::ExactSums* loss) override {
    c_lab_ = c_lab;
    c_unl_ = c_unl;
    epoch_loss_ = loss;
    return *this;
  }

  // ---- MetaStepOps: the strategy's moves on the device (core/strategy.h).
  void forward_backward(float scale, bool record) override {
    gather();
    pass(U_.data(), I_.data(), w_.data(), c_lab_ * scale, c_unl_ * scale, record ? epoch_loss_ : nullptr, 0, 1,
         gU_.data(), gI_.data(), gd_);
  }
  void apply() override { apply_main(gU_.data(), gI_.data()); }

  void labeled_gradient(dist::ExactSums& L) override {
    gather();
    pass(U_.data(), I_.data(), w_.data(), c_lab_, 0.0, &L, 2, 2, gU_.data(), gI_.data(), gd_);
  }

  void propose() override {
    const size_t nu = n_ * R_, ni = n_ * per_ * R_;
    const bool ref = cfg_.il_reference;
    float* gU2 = gU2_.get(std::max<size_t>(nu, 1));
    float* gI2 = gI2_.get(std::max<size_t>(ni, 1));
    float* DU = DU_.get(std::max<size_t>(nu, 1));
    float* DI = DI_.get(std::max<size_t>(ni, 1));
    const ig::CandidateStep cand{cfg_.ig_sample_lr, ref, cfg_.opt.beta1, cfg_.opt.beta2, cfg_.opt.eps};
    pass(U_.data(), I_.data(), w_.data(), 0.0, c_unl_, nullptr, 0, 0, gU2, gI2, gd2_);
    gdense_idl_.resize(nd_);
    gd2_.allreduce(ctx_.host(), gdense_idl_.data());
    delta_.resize(nd_);
    cand.delta(gdense_idl_.data(), delta_.data(), static_cast<int>(nd_));
    user_->candidate(ctx_.comm(), ur_, ukey_.data(), gU2, cfg_.ig_sample_lr, ref, DU);
    item_->candidate(ctx_.comm(), ir_, ikey_.data(), gI2, cfg_.ig_sample_lr, ref, DI);
  }

  void candidate_losses(dist::ExactSums& L) override {
    // Both candidates over the labeled rows, from local rows: theta + d and theta - d.
    cudaStream_t st = ctx_.stream();
    const size_t nu = n_ * R_, ni = n_ * per_ * R_;
    std::vector<float> wc(nd_);
    for (int c = 0; c < 2; ++c) {
      const float sign = c == 0 ? 1.0f : -1.0f;
      for (size_t k = 0; k < nd_; ++k) wc[k] = c == 0 ? model_.dense[k] + delta_[k] : model_.dense[k] - delta_[k];
      upload_dense(wc.data(), wc_.get(nd_));
      float* Uc = Uc_.get(std::max<size_t>(nu, 1));
      float* Ic = Ic_.get(std::max<size_t>(ni, 1));
      kc::signed_sum(U_.data(), DU_.data(), sign, nu, Uc, st);
      kc::signed_sum(I_.data(), DI_.data(), sign, ni, Ic, st);
      pass(Uc, Ic, wc_.data(), 1.0, 0.0, &L, c, c, nullptr, nullptr, gd_);
    }
  }

  void allreduce(dist::ExactSums& L) override { L.allreduce(ctx_.host()); }

  void commit(int sign_i, bool add_dual) override {
    cudaStream_t st = ctx_.stream();
    const size_t nu = n_ * R_, ni = n_ * per_ * R_;
    const float sign = static_cast<float>(sign_i);
    // Commit the candidate (touched rows at their owners, dense everywhere) ...
    user_->commit_candidate(sign);
    item_->commit_candidate(sign);
    for (size_t k = 0; k < nd_; ++k)
      model_.dense[k] = sign > 0 ? model_.dense[k] + delta_[k] : model_.dense[k] - delta_[k];
    upload_dense(model_.dense.data(), w_.data());
    // ... and take the BCE gradient there, from the candidate's rows (held locally).
    kc::signed_sum(U_.data(), DU_.data(), sign, nu, U_.data(), st);
    kc::signed_sum(I_.data(), DI_.data(), sign, ni, I_.data(), st);
    pass(U_.data(), I_.data(), w_.data(), c_lab_, 0.0, nullptr, 0, 0, gU_.data(), gI_.data(), gd_);
    if (!add_dual) return;
    kc::signed_sum(gU_.data(), gU2_.data(), sign, nu, gU_.data(), st);
    kc::signed_sum(gI_.data(), gI2_.data(), sign, ni, gI_.data(), st);
  }

  void fresh_apply(int sign) override {
    user_->fresh_step(ctx_.comm(), ur_, ukey_.data(), gU_.data(), cfg_.opt.lr);
    item_->fresh_step(ctx_.comm(), ir_, ikey_.data(), gI_.data(), cfg_.opt.lr);
    gd_.allreduce(ctx_.host(), gdense_.data());
    if (sign != 0)
      for (size_t k = 0; k < nd_; ++k) gdense_[k] += static_cast<float>(sign) * gdense_idl_[k];
    const ig::CandidateStep main{cfg_.opt.lr, true, cfg_.opt.beta1, cfg_.opt.beta2, cfg_.opt.eps};
    main.step(gdense_.data(), model_.dense.data(), static_cast<int>(nd_));
    upload_dense(model_.dense.data(), w_.data());
  }

  void reset_table_optimizers() override {
    user_->reset_optimizer();
    item_->reset_optimizer();
  }

  void download(NcfModel& model) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(ctx_.device()));
    user_->download(model.user);
    item_->download(model.item);
  }

  void download_state(NcfModel& model) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(ctx_.device()));
    user_->download_state(model.user);
    item_->download_state(model.item);
  }

  void upload_state(const NcfModel& model) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(ctx_.device()));
    user_->upload_state(model.user);
    item_->upload_state(model.item);
    upload_dense(model.dense.data(), w_.data());
  }

 private:
  template <class T>
  void upload(const T* src, T* dst, size_t count) {
    if (count) SHARDREC_CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(T), cudaMemcpyHostToDevice, ctx_.stream()));
  }
  void upload_dense(const float* src, float* dst) {
    upload(src, dst, nd_);
    SHARDREC_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream()));  // src is pageable and may change
  }

  void gather() {
    const size_t n1 = std::max<size_t>(n_, 1);
    const size_t nu = n1 * R_, ni = n1 * per_ * R_;
    U_.get(nu);
    I_.get(ni);
    gU_.get(nu);
    gI_.get(ni);
    user_->gather(ctx_.comm(), ur_, U_.data());
    item_->gather(ctx_.comm(), ir_, I_.data());
  }

  // NcfModel::pass on the device: the rows of the step at rows U, I and dense w (device).
  // Labeled rows weigh c_lab, unlabeled ones c_unl (0: skipped; all unlabeled weights 0 runs the
  // labeled rows only). Unweighted losses go to loss slots (when loss), gradients of the weighted
  // loss to gU, gI and gd (when gU).
  void pass(const float* U, const float* I, const float* w, double c_lab, double c_unl, dist::ExactSums* loss,
            int slot_lab, int slot_unl, float* gU, float* gI, DenseGradAccum& gd) {
    cudaStream_t st = ctx_.stream();
    kc::NcfShape s;
    s.g = g_;
    s.m = m_;
    s.per = per_;
    s.per_used = c_unl != 0 ? per_ : 1;
    const size_t M = n_ * s.per_used, Mp = std::max(kc::padded_rows(M), kc::kRows);
    const auto& layers = model_.mlp();
    const int L = static_cast<int>(layers.size());
    // Activations: P = [p | MLP output] (the prediction layer's input), X[l] = layer l's input.
    float* P = P_.get(Mp * pin_);
    std::vector<float*> X(L);
    {
      size_t off = 0;
      for (int l = 0; l < L; ++l) off += Mp * layers[l].in;
      float* base = X_.get(std::max<size_t>(off, 1));
      off = 0;
      for (int l = 0; l < L; ++l) {
        X[l] = base + off;
        off += Mp * layers[l].in;
      }
    }
    float* y = y_.get(Mp);
    kc::ncf_inputs(U, I, n_, s, P, pin_, L ? X[0] : nullptr, st);
    for (int l = 0; l < L; ++l) {
      const NcfModel::Layer& Ly = layers[l];
      float* out = l + 1 < L ? X[l + 1] : P + g_;
      const int ldo = l + 1 < L ? layers[l + 1].in : pin_;
      kc::linear_forward(blas_, X[l], Ly.in, M, Ly.in, w + Ly.w, w + Ly.b, Ly.out, /*relu=*/true, out, ldo);
    }
    const NcfModel::Layer& pr = model_.pred();
    kc::linear_forward(blas_, P, pin_, M, pin_, w + pr.w, w + pr.b, 1, /*relu=*/false, y, 1);
    double* lossd = loss_.get(std::max<size_t>(M, 1));
    float* dy = dy_.get(std::max<size_t>(M, 1));
    kc::ncf_loss(y, n_, s, lab_.data(), c_lab, c_unl, cfg_.loss == "bce-neg", lossd, dy, st);
    if (loss) {
      double* lh = loss_h_.get(std::max<size_t>(M, 1));
      if (M) SHARDREC_CUDA_CHECK(cudaMemcpyAsync(lh, lossd, M * sizeof(double), cudaMemcpyDeviceToHost, st));
      ctx_.sync();
      for (size_t r = 0; r < M; ++r) {
        const bool labeled = r % s.per_used == 0;
        if ((labeled ? c_lab : c_unl) == 0) continue;
        if (!std::isfinite(lh[r]))
          fail("training diverged: a loss term is " + std::to_string(lh[r]) + " on rank " +
               std::to_string(ctx_.host().rank()) + " (GPU backend; lower the learning rate?)");
        loss->add(labeled ? slot_lab : slot_unl, lh[r]);
      }
    }
    if (!gU) return;
    // Backward. The dense gradients sum in fixed point on the device, as DenseGradAccum does.
    int64_t* acc = acc_.get(std::max<size_t>(nd_, 1));
    int* bad = bad_.get(1);
    SHARDREC_CUDA_CHECK(cudaMemsetAsync(acc, 0, nd_ * sizeof(int64_t), st));
    SHARDREC_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int), st));
    const int fb = DenseGradAccum::kFracBits;
    kc::fixed_outer_sum(dy, 1, 1, P, pin_, pin_, M, fb, kMaxAbs, acc + pr.w, bad, st);
    kc::fixed_outer_sum(dy, 1, 1, nullptr, 0, 1, M, fb, kMaxAbs, acc + pr.b, bad, st);
    float* dP = dP_.get(Mp * pin_);
    kc::ncf_pred_input_grad(dy, M, w + pr.w, pin_, dP, pin_, st);
    const float* dX0 = nullptr;
    if (L) {
      // dH of the last layer lives in dP's MLP columns; then ping-pong buffers.
      float* dA = dA_.get(Mp * max_in_);
      float* dB = dB_.get(Mp * max_in_);
      float* dH = dP + g_;
      int ldh = pin_;
      for (int l = L - 1; l >= 0; --l) {
        const NcfModel::Layer& Ly = layers[l];
        const float* out = l + 1 < L ? X[l + 1] : P + g_;
        const int ldo = l + 1 < L ? layers[l + 1].in : pin_;
        kc::relu_mask(out, ldo, dH, ldh, M, Ly.out, st);
        kc::fixed_outer_sum(dH, ldh, Ly.out, X[l], Ly.in, Ly.in, M, fb, kMaxAbs, acc + Ly.w, bad, st);
        kc::fixed_outer_sum(dH, ldh, Ly.out, nullptr, 0, 1, M, fb, kMaxAbs, acc + Ly.b, bad, st);
        float* dX = dH == dA ? dB : dA;
        kc::linear_backward_input(blas_, dH, ldh, M, Ly.out, w + Ly.w, Ly.in, dX, Ly.in);
        dH = dX;
        ldh = Ly.in;
      }
      dX0 = dH;
    }
    kc::ncf_row_grads(dP, pin_, dX0, U, I, n_, s, gU, gI, st);
    int bad_h = 0;
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(gd.data(), acc, nd_ * sizeof(int64_t), cudaMemcpyDeviceToHost, st));
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(&bad_h, bad, sizeof(int), cudaMemcpyDeviceToHost, st));
    ctx_.sync();
    if (bad_h)
      fail("training diverged: a dense gradient contribution is not finite or exceeds " + std::to_string(kMaxAbs) +
           " on rank " + std::to_string(ctx_.host().rank()) + " (GPU backend; lower the learning rate?)");
  }

  void apply_main(const float* gU, const float* gI) {
    user_->apply(ctx_.comm(), ur_, ukey_.data(), gU);
    item_->apply(ctx_.comm(), ir_, ikey_.data(), gI);
    gd_.allreduce(ctx_.host(), gdense_.data());
    model_.apply_dense(gdense_.data());
    upload_dense(model_.dense.data(), w_.data());
  }

  TrainConfig cfg_;
  NcfModel& model_;
  GpuContext ctx_;
  kc::Blas blas_;
  std::unique_ptr<dist::DeviceEmbedding> user_, item_;
  dist::DeviceRouting ur_, ir_;
  size_t nd_ = 0, n_ = 0;
  int per_ = 1, g_ = 0, m_ = 0, R_ = 0, pin_ = 0, max_in_ = 0;
  DeviceBuffer<int64_t> uid_, iid_, acc_, ptr_, grow_, failed_;
  DeviceBuffer<int32_t> items_, user_local_;
  int64_t num_items_ = 0;
  DeviceBuffer<uint64_t> ukey_, ikey_;
  DeviceBuffer<uint8_t> lab_;
  DeviceBuffer<int> bad_;
  DeviceBuffer<float> w_, wc_, U_, I_, gU_, gI_, gU2_, gI2_, DU_, DI_, Uc_, Ic_;
  DeviceBuffer<float> P_, X_, y_, dy_, dP_, dA_, dB_;
  DeviceBuffer<double> loss_;
  PinnedBuffer<double> loss_h_;
  DenseGradAccum gd_, gd2_;
  std::vector<float> delta_, gdense_, gdense_idl_;
  // The step's weights and the epoch's loss sums (ops()).
  double c_lab_ = 0, c_unl_ = 0;
  dist::ExactSums* epoch_loss_ = nullptr;
};

}  // namespace

std::unique_ptr<GpuPointwise> GpuPointwise::create(const TrainConfig& cfg, NcfModel& model, const io::DataShard& data,
                                                   dist::Comm& comm) {
  resolve_device("cuda");
  return std::make_unique<CudaPointwise>(cfg, model, data, comm);
}

}  // namespace shardrec
