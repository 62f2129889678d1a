#pragma once
#include <cblas.h>
// openblas_set_num_threads / openblas_get_num_threads / openblas_get_corename
// are declared by OpenBLAS's cblas.h (openblas_config.h).
