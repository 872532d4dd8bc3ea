// CUDA helpers of the GPU backend: errors that reach the user as shardrec::Error with the call and
// the device named, and RAII owners for device memory, pinned host memory and streams.
// Included only by sources compiled when the CUDA backend is built.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "base/error.h"

namespace shardrec::cuda {

[[noreturn]] inline void cuda_fail(cudaError_t e, const char* what, const char* file, int line) {
  int dev = -1;
  cudaGetDevice(&dev);
  fail(std::string("CUDA error on device ") + std::to_string(dev) + " in " + what + " (" + file + ":" +
       std::to_string(line) + "): " + cudaGetErrorString(e));
}

#define SHARDREC_CUDA_CHECK(call)                                                   \
  do {                                                                              \
    cudaError_t shardrec_e_ = (call);                                               \
    if (shardrec_e_ != cudaSuccess) ::shardrec::cuda::cuda_fail(shardrec_e_, #call, __FILE__, __LINE__); \
  } while (0)

// Grow-only device buffer (contents unspecified after growth), like core/scratch.h on the host.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) { get(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), cap_(std::exchange(o.cap_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      cap_ = std::exchange(o.cap_, 0);
    }
    return *this;
  }
  T* get(size_t n) {
    if (n > cap_) {
      release();
      SHARDREC_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), std::max<size_t>(n, 1) * sizeof(T)));
      cap_ = n;
    }
    return p_;
  }
  T* data() const { return p_; }
  size_t capacity() const { return cap_; }

 private:
  void release() {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    cap_ = 0;
  }
  T* p_ = nullptr;
  size_t cap_ = 0;
};

// Grow-only pinned host buffer (fast, asynchronous copies).
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { if (p_) cudaFreeHost(p_); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  T* get(size_t n) {
    if (n > cap_) {
      if (p_) cudaFreeHost(p_);
      p_ = nullptr;
      SHARDREC_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&p_), std::max<size_t>(n, 1) * sizeof(T)));
      cap_ = n;
    }
    return p_;
  }

 private:
  T* p_ = nullptr;
  size_t cap_ = 0;
};

class Stream {
 public:
  Stream() { SHARDREC_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() { if (s_) cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const { SHARDREC_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

// True when p points into device memory (cudaMalloc); host, pinned and unknown pointers are false.
inline bool is_device_pointer(const void* p) {
  if (!p) return false;
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error of an unregistered host pointer
    return false;
  }
  return a.type == cudaMemoryTypeDevice;
}

}  // namespace shardrec::cuda
