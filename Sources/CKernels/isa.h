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
