#include "dist/comm.h"

#include <string>

#include "base/error.h"

namespace shardrec::dist {

void Comm::check_memory(Memory mem, const char* op) const {
  if (mem == Memory::kDevice && !handles_device_memory())
    fail(std::string("rank ") + std::to_string(rank()) + ": " + op +
         " of device buffers on a host-only communicator (use the CUDA communicator)");
}

void Comm::alltoallv(const void* send, const size_t* send_bytes, const size_t* send_displs, void* recv,
                     const size_t* recv_bytes, const size_t* recv_displs, Memory mem) {
  check_memory(mem, "alltoallv");
  ++stats_.alltoallv_calls;
  for (int k = 0; k < size(); ++k)
    if (k != rank()) stats_.alltoallv_bytes_sent += send_bytes[k];
  do_alltoallv(send, send_bytes, send_displs, recv, recv_bytes, recv_displs, mem);
}

void Comm::alltoall_u64(const uint64_t* send, uint64_t* recv) {
  ++stats_.alltoall_calls;
  do_alltoall_u64(send, recv);
}

void Comm::allreduce_sum(int64_t* data, size_t n, Memory mem) {
  check_memory(mem, "allreduce_sum");
  ++stats_.allreduce_calls;
  stats_.allreduce_bytes += n * sizeof(int64_t);
  do_allreduce_sum(data, n, mem);
}

void Comm::allreduce_max(double* data, size_t n, Memory mem) {
  check_memory(mem, "allreduce_max");
  ++stats_.allreduce_calls;
  stats_.allreduce_bytes += n * sizeof(double);
  do_allreduce_max(data, n, mem);
}

void Comm::allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes, Memory mem) {
  check_memory(mem, "allgatherv");
  ++stats_.allgather_calls;
  stats_.allgather_bytes_sent += send_bytes * static_cast<uint64_t>(size() - 1);
  do_allgatherv(send, send_bytes, recv, recv_bytes, mem);
}

void Comm::allgather_u64(uint64_t value, uint64_t* recv) {
  ++stats_.allgather_calls;
  do_allgather_u64(value, recv);
}

void Comm::broadcast(void* data, size_t bytes, int root, Memory mem) {
  check_memory(mem, "broadcast");
  ++stats_.bcast_calls;
  do_broadcast(data, bytes, root, mem);
}

void Comm::barrier() {
  ++stats_.barrier_calls;
  do_barrier();
}

RowLayout::RowLayout(const std::vector<size_t>& rows_out, const std::vector<size_t>& rows_in, size_t row_bytes)
    : send_bytes(rows_out.size()), send_displs(rows_out.size()), recv_bytes(rows_in.size()),
      recv_displs(rows_in.size()) {
  for (size_t q = 0; q < rows_out.size(); ++q) {
    send_bytes[q] = rows_out[q] * row_bytes;
    send_displs[q] = send_total;
    send_total += send_bytes[q];
  }
  for (size_t q = 0; q < rows_in.size(); ++q) {
    recv_bytes[q] = rows_in[q] * row_bytes;
    recv_displs[q] = recv_total;
    recv_total += recv_bytes[q];
  }
}

}  // namespace shardrec::dist
