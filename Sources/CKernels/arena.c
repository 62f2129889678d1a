// The block arena: buffers of recomputed blocks, reused without page faults (see CKernels.h).
//
// One reservation of the machine's physical memory size, MAP_NORESERVE, huge pages advised; pages
// are faulted in the first time an allocation reaches them and then stay. Allocation is
// address-ordered first fit over a sorted list of free ranges, in 64 KiB units; freeing merges a
// range with its neighbours. Blocks allocate and free in the same order every step, so after the
// first step the same addresses come back and no page is faulted or zero-filled again.
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "CKernels.h"

#define UNIT ((size_t)64 << 10)
#define MAX_RANGES 4096

typedef struct { size_t start, length; } range_t;   // in bytes, multiples of UNIT

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *base;                 // NULL until the first allocation; (char *)-1 when mapping failed
static size_t reserved;
static range_t free_ranges[MAX_RANGES];
static int free_count;
static size_t high_water;          // bytes from base that have ever been handed out (trim stops there)
static int poison;                 // tests: fill new allocations with NaN
static _Thread_local int depth;    // > 0 while this thread runs a block (fkp_arena_set_depth)

static size_t unit_bytes(long count) { return ((size_t)count * sizeof(float) + UNIT - 1) & ~(UNIT - 1); }

static int reserve(void) {
    if (base) return base != (char *)-1;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    reserved = (pages > 0 && page > 0 ? (size_t)pages * (size_t)page : (size_t)1 << 34) & ~(UNIT - 1);
    void *p = mmap(NULL, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { base = (char *)-1; return 0; }
    (void)madvise(p, reserved, MADV_HUGEPAGE);
    base = p;
    free_ranges[0] = (range_t){0, reserved};
    free_count = 1;
    return 1;
}

float *fkp_arena_floats(long count) {
    size_t bytes = unit_bytes(count);
    char *p = NULL;
    pthread_mutex_lock(&lock);
    if (reserve()) {
        for (int i = 0; i < free_count; i++) {
            if (free_ranges[i].length < bytes) continue;
            p = base + free_ranges[i].start;
            free_ranges[i].start += bytes;
            free_ranges[i].length -= bytes;
            if (free_ranges[i].length == 0) {
                memmove(&free_ranges[i], &free_ranges[i + 1], (size_t)(free_count - i - 1) * sizeof(range_t));
                free_count--;
            }
            size_t end = (size_t)(p - base) + bytes;
            if (end > high_water) high_water = end;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    if (p && poison) {
        float *f = (float *)p;
        for (long i = 0; i < count; i++) f[i] = __builtin_nanf("");
    }
    return (float *)p;
}

void fkp_arena_free(float *p, long count) {
    size_t start = (size_t)((char *)p - base), length = unit_bytes(count);
    pthread_mutex_lock(&lock);
    int i = 0;   // the first free range after this one
    while (i < free_count && free_ranges[i].start < start) i++;
    int joins_previous = i > 0 && free_ranges[i - 1].start + free_ranges[i - 1].length == start;
    int joins_next = i < free_count && start + length == free_ranges[i].start;
    if (joins_previous && joins_next) {
        free_ranges[i - 1].length += length + free_ranges[i].length;
        memmove(&free_ranges[i], &free_ranges[i + 1], (size_t)(free_count - i - 1) * sizeof(range_t));
        free_count--;
    } else if (joins_previous) {
        free_ranges[i - 1].length += length;
    } else if (joins_next) {
        free_ranges[i].start = start;
        free_ranges[i].length += length;
    } else if (free_count < MAX_RANGES) {
        memmove(&free_ranges[i + 1], &free_ranges[i], (size_t)(free_count - i) * sizeof(range_t));
        free_ranges[i] = (range_t){start, length};
        free_count++;
    }   // else: more holes than the list holds; this range stays allocated (a leak, not an error)
    pthread_mutex_unlock(&lock);
}

void fkp_arena_trim(void) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < free_count && free_ranges[i].start < high_water; i++) {
        size_t end = free_ranges[i].start + free_ranges[i].length;
        if (end > high_water) end = high_water;
        (void)madvise(base + free_ranges[i].start, end - free_ranges[i].start, MADV_DONTNEED);
    }
    pthread_mutex_unlock(&lock);
}

int fkp_arena_depth(void) { return depth; }
void fkp_arena_set_depth(int d) { depth = d; }

void fkp_arena_poison(int on) { poison = on; }
