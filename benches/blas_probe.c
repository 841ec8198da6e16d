/* A one-off probe of library GEMMs through dlopen, behind README, Performance ("No library BLAS was used for
 * bf16"): the GFLOP/s of a library's sgemm and, when a second symbol is named, of its bf16 GEMM (the signature of
 * MKL's cblas_gemm_bf16bf16f32), at the model's product shapes, C (m, n) = A (m, k) · Bᵀ with B stored (n, k);
 * one warm-up call, then the mean of 10. Not part of the build or the tests.
 *
 *   pip download --no-deps mkl==2026.2.1 -d /tmp/wh
 *   unzip -j /tmp/wh/mkl-2026.2.1-py2.py3-none-manylinux_2_28_x86_64.whl 'mkl-2026.2.1.data/data/lib/libmkl_*' -d /tmp/mkl
 *   gcc -O2 benches/blas_probe.c -o /tmp/blas_probe -ldl
 *   LD_LIBRARY_PATH=/tmp/mkl MKL_THREADING_LAYER=SEQUENTIAL \
 *       /tmp/blas_probe /tmp/mkl/libmkl_rt.so.3 cblas_sgemm cblas_gemm_bf16bf16f32
 *   OPENBLAS_NUM_THREADS=1 /tmp/blas_probe models/cache/blas/libscipy_openblas.so scipy_cblas_sgemm
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                         float *, int);
typedef void (*bf16_fn)(int, int, int, int, int, int, float, const uint16_t *, int, const uint16_t *, int, float,
                        float *, int);

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112, REPS = 10 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s LIBRARY SGEMM_SYMBOL [BF16_SYMBOL]\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    sgemm_fn sgemm = (sgemm_fn)dlsym(lib, argv[2]);
    bf16_fn bf16 = argc > 3 ? (bf16_fn)dlsym(lib, argv[3]) : NULL;
    if (!sgemm || (argc > 3 && !bf16)) {
        fprintf(stderr, "symbol not found\n");
        return 1;
    }
    /* (m, n, k): feed-forward in, vocabulary projection, feed-forward out, a Llama projection. */
    int shapes[][3] = {{1024, 2048, 512}, {256, 32128, 512}, {1024, 512, 2048}, {512, 576, 576}};
    for (int s = 0; s < 4; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = malloc(4L * m * k), *b = malloc(4L * n * k), *c = malloc(4L * m * n);
        uint16_t *ab = malloc(2L * m * k), *bb = malloc(2L * n * k);
        for (long i = 0; i < (long)m * k; i++) { a[i] = (rand() % 100) / 100.f; ab[i] = 0x3f80; /* 1.0 */ }
        for (long i = 0; i < (long)n * k; i++) { b[i] = (rand() % 100) / 100.f; bb[i] = 0x3f80; }
        double flop = 2.0 * m * n * k;
        sgemm(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1, a, k, b, k, 0, c, n);
        double t = now();
        for (int r = 0; r < REPS; r++) sgemm(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1, a, k, b, k, 0, c, n);
        double secs = (now() - t) / REPS;
        printf("%dx%dx%d sgemm %.2f ms %.0f GFLOP/s", m, n, k, secs * 1e3, flop / secs / 1e9);
        if (bf16) {
            bf16(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1, ab, k, bb, k, 0, c, n);
            t = now();
            for (int r = 0; r < REPS; r++) bf16(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1, ab, k, bb, k, 0, c, n);
            secs = (now() - t) / REPS;
            /* All-ones operands: every C value must be k. */
            printf(" | bf16 %.2f ms %.0f GFLOP/s (C[0] = %g, want %d)", secs * 1e3, flop / secs / 1e9, c[0], k);
        }
        printf("\n");
        free(a), free(b), free(c), free(ab), free(bb);
    }
    return 0;
}
