#pragma once
// The instruction-set choice shared by the kernel files (private to CKernels: not in include/).
// conv3x3.c owns it (detection, fkp_kernels_use, fkp_kernels_isa); every kernel file dispatches
// on fkp_current_isa(), so one fkp_kernels_use switches all of them together.

enum isa { ISA_UNKNOWN, ISA_GENERIC, ISA_AVX2, ISA_AVX512 };

/// The version to run: detected on first use, or the one fkp_kernels_use chose.
enum isa fkp_current_isa(void);

#if defined(__x86_64__) || defined(__i386__)
#define FKP_X86 1
#define AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define AVX2 __attribute__((target("avx2,fma")))
#endif

// The portable vector code's vocabulary (clang's vector extensions), the same in every file.
#define AI __attribute__((always_inline))
// Helpers take and return 32-byte vectors; they are always inlined into the target-attributed
// functions, so the baseline version's "AVX vector argument" ABI warning is moot.
#pragma clang diagnostic ignored "-Wpsabi"
/// Eight floats, unaligned (aligned(4)). Stride-2 data comes from two loads and a shuffle: the
/// compiler turns strided loads and stores into gathers and scatters.
typedef float f8 __attribute__((vector_size(32), aligned(4)));

static inline AI f8 load8(const float *p) { return *(const f8 *)p; }
