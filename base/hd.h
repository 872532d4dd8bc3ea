// Functions that the CPU and the CUDA backend must compute to the bit are written once, as inline
// functions both compilers build (g++ for .cc, nvcc for .cu), instead of a hand mirror in each
// kernel file. SHARDREC_HD marks them.
#pragma once

#if defined(__CUDACC__)
#define SHARDREC_HD __host__ __device__
#else
#define SHARDREC_HD
#endif
