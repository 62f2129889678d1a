/* Reference for Scripts/bench-allreduce: in-place MPI_Allreduce of floats, timed exactly as
 * `swiftmpi-selftest bench` times the Swift wrapper (warm-up, then barrier + one timed call per
 * rep; rank 0 prints the median), so the two outputs compare line for line.
 * Usage: allreduce [--reps N] [--warmup W] [--sizes BYTES,...] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double time_allreduce(float *buffer, int count, int reps, int warmup, double *times) {
    for (int i = 0; i < warmup; i++) MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int rep = 0; rep < reps; rep++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        times[rep] = MPI_Wtime() - start;
    }
    qsort(times, reps, sizeof(double), compare_doubles);
    return reps % 2 ? times[reps / 2] : (times[reps / 2 - 1] + times[reps / 2]) / 2;
}

int main(int argc, char **argv) {
    int provided, rank, size, reps = 20, warmup = 3, nsizes = 4;
    long sizes[32] = {1L << 10, 1L << 20, 16L << 20, 100L << 20};
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sizes")) {
            nsizes = 0;
            for (char *s = strtok(argv[i + 1], ","); s && nsizes < 32; s = strtok(NULL, ",")) sizes[nsizes++] = atol(s);
        }
    }
    long largest = 0;
    for (int i = 0; i < nsizes; i++) if (sizes[i] > largest) largest = sizes[i];
    if (reps <= 0 || warmup < 0 || largest < 4) {
        if (rank == 0) fprintf(stderr, "allreduce: need --reps > 0, --warmup >= 0, sizes of at least 4 bytes\n");
        MPI_Finalize();
        return 2;
    }
    float *buffer = calloc((size_t)largest / sizeof(float), sizeof(float));
    double *times = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < nsizes; i++) {
        double median = time_allreduce(buffer, (int)(sizes[i] / sizeof(float)), reps, warmup, times);
        if (rank == 0) printf("c allreduce bytes %ld ranks %d reps %d median_ms %.4f\n", sizes[i], size, reps, median * 1e3);
    }
    free(times);
    free(buffer);
    MPI_Finalize();
    return 0;
}
