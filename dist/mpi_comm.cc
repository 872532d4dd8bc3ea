#include "dist/mpi_comm.h"

#include <mpi.h>

#include <climits>
#include <string>
#include <vector>

#include "base/error.h"

namespace shardrec::dist {

namespace {
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, buf, &len);
  fail(std::string("MPI ") + what + " failed: " + std::string(buf, len));
}
int to_int(size_t v, const char* what) {
  if (v > static_cast<size_t>(INT_MAX))
    fail(std::string("MPI ") + what + ": a message of " + std::to_string(v) +
         " bytes exceeds MPI's int count; use a smaller batch");
  return static_cast<int>(v);
}
}  // namespace

MpiEnv::MpiEnv(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
}
MpiEnv::~MpiEnv() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
void MpiEnv::abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

struct MpiComm::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
};

MpiComm::MpiComm() : impl_(std::make_unique<Impl>()) {
  check(MPI_Comm_dup(MPI_COMM_WORLD, &impl_->comm), "Comm_dup");
  MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(impl_->comm, &rank_);
  MPI_Comm_size(impl_->comm, &size_);
}
MpiComm::~MpiComm() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (impl_->comm != MPI_COMM_NULL && !finalized) MPI_Comm_free(&impl_->comm);
}

const void* MpiComm::native_handle() const { return &impl_->comm; }

void MpiComm::do_alltoallv(const void* send, const size_t* send_bytes, const size_t* send_displs,
                          void* recv, const size_t* recv_bytes, const size_t* recv_displs, Memory) {
  std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
  for (int k = 0; k < size_; ++k) {
    sc[k] = to_int(send_bytes[k], "alltoallv");
    sd[k] = to_int(send_displs[k], "alltoallv");
    rc[k] = to_int(recv_bytes[k], "alltoallv");
    rd[k] = to_int(recv_displs[k], "alltoallv");
  }
  check(MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE,
                      impl_->comm),
        "Alltoallv");
}

void MpiComm::do_alltoall_u64(const uint64_t* send, uint64_t* recv) {
  check(MPI_Alltoall(send, 1, MPI_UINT64_T, recv, 1, MPI_UINT64_T, impl_->comm), "Alltoall");
}

void MpiComm::do_allreduce_sum(int64_t* data, size_t n, Memory) {
  check(MPI_Allreduce(MPI_IN_PLACE, data, to_int(n, "allreduce"), MPI_INT64_T, MPI_SUM, impl_->comm),
        "Allreduce");
}

void MpiComm::do_allreduce_max(double* data, size_t n, Memory) {
  check(MPI_Allreduce(MPI_IN_PLACE, data, to_int(n, "allreduce"), MPI_DOUBLE, MPI_MAX, impl_->comm),
        "Allreduce");
}

void MpiComm::do_allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes, Memory) {
  std::vector<int> rc(size_), rd(size_);
  size_t off = 0;
  for (int k = 0; k < size_; ++k) {
    rc[k] = to_int(recv_bytes[k], "allgatherv");
    rd[k] = to_int(off, "allgatherv");
    off += recv_bytes[k];
  }
  check(MPI_Allgatherv(send, to_int(send_bytes, "allgatherv"), MPI_BYTE, recv, rc.data(), rd.data(),
                       MPI_BYTE, impl_->comm),
        "Allgatherv");
}

void MpiComm::do_allgather_u64(uint64_t value, uint64_t* recv) {
  check(MPI_Allgather(&value, 1, MPI_UINT64_T, recv, 1, MPI_UINT64_T, impl_->comm), "Allgather");
}

void MpiComm::do_broadcast(void* data, size_t bytes, int root, Memory) {
  check(MPI_Bcast(data, to_int(bytes, "broadcast"), MPI_BYTE, root, impl_->comm), "Bcast");
}

void MpiComm::do_barrier() { check(MPI_Barrier(impl_->comm), "Barrier"); }

}  // namespace shardrec::dist
