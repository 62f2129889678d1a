// Large buffers for activation recomputation, mapped on their own (see CKernels.h).
#include <stddef.h>
#include <sys/mman.h>
#include "CKernels.h"

// Whole 2 MiB pages: the kernel aligns such mappings to 2 MiB, so that all of it can be huge pages.
static size_t mapped_bytes(long count) { return ((size_t)count * sizeof(float) + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1); }

float *fkp_map_floats(long count) {
    size_t bytes = mapped_bytes(count);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    // 2 MiB pages where the kernel can: one fault per 2 MiB instead of per 4 KiB. Advice only.
    (void)madvise(p, bytes, MADV_HUGEPAGE);
    return (float *)p;
}

void fkp_unmap_floats(float *p, long count) { (void)munmap(p, mapped_bytes(count)); }
