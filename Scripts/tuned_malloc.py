"""glibc malloc kept from returning freed memory to the kernel: how a serious PyTorch CPU user runs it
(these variables, or jemalloc/tcmalloc). The PyTorch benchmarks run PyTorch with and without them."""
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "17179869184",
                "MALLOC_TOP_PAD_": "268435456"}
