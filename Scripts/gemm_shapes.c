// Why DenseNet-BC's thin 3x3 convolution (48 -> 12 channels) runs below the GEMM limit: one
// thread's share of its products (32 images of 32x32, DenseNet-BC-100 block 1 at batch 64 split
// over two threads), issued per image and kernel tap as Conv2d+Shifted.swift does, and per tap
// over the whole plane, next to a square sgemm. Build and run with Scripts/gemm_shapes.sh.
// (Timed in C: from Python, ctypes' per-call overhead made per-image calls look slower.)
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void openblas_set_num_threads(int);

enum { Cin = 48, Cout = 12, H = 32, W = 32, N = 32, P = N * H * W, Taps = 9 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *filled(long count) {
    float *p = malloc(4 * count);
    for (long i = 0; i < count; i++) p[i] = rand() / (float)RAND_MAX;
    return p;
}

// Best of 7, as GFLOP/s of `flops`.
#define TIME(name, flops, ...)                                                            \
    do {                                                                                     \
        double best = 1e9;                                                                   \
        for (int r = 0; r < 7; r++) { double t = now(); __VA_ARGS__; t = now() - t; if (t < best) best = t; } \
        printf("%-34s %8.3f ms %7.1f GFLOP/s\n", name, best * 1e3, (flops) / best / 1e9);    \
    } while (0)

// The tap's shift in the flattened plane, and the band of output positions whose source stays
// inside [0, P) (whole plane; padding is not masked: this measures the products only).
static int shift(int t) { return (t / 3 - 1) * W + t % 3 - 1; }

int main(void) {
    openblas_set_num_threads(1);
    float *x = filled((long)Cin * P), *y = filled((long)Cout * P), *w = filled(Taps * Cout * Cin);
    float *dy = filled((long)Cout * P), *dx = filled((long)Cin * P), *dw = filled(Taps * Cout * Cin);
    double flops = 2.0 * Cout * Cin * Taps * P;
    const int band = H * W - W;  // positions per image a tap with a row shift reaches

    TIME("forward, per image and tap", flops, for (int n = 0; n < N; n++) for (int t = 0; t < Taps; t++)
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cout, band, Cin, 1, w + t * Cout * Cin, Cin,
                     x + n * H * W, P, 1, y + n * H * W, P));
    TIME("forward, whole plane per tap", flops, for (int t = 0; t < Taps; t++) {
         int s = shift(t), a = s < 0 ? -s : 0, b = s > 0 ? P - s : P;
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cout, b - a, Cin, 1, w + t * Cout * Cin, Cin,
                     x + a + s, P, 1, y + a, P); });
    TIME("input gradient, per image and tap", flops, for (int n = 0; n < N; n++) for (int t = 0; t < Taps; t++)
         cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cin, band, Cout, 1, w + t * Cout * Cin, Cin,
                     dy + n * H * W, P, 1, dx + n * H * W, P));
    TIME("input gradient, whole plane", flops, for (int t = 0; t < Taps; t++) {
         int s = shift(t), a = s < 0 ? -s : 0, b = s > 0 ? P - s : P;
         cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cin, b - a, Cout, 1, w + t * Cout * Cin, Cin,
                     dy + a, P, 1, dx + a + s, P); });
    TIME("weight gradient, per image and tap", flops, for (int n = 0; n < N; n++) for (int t = 0; t < Taps; t++)
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, Cin, band, 1, dy + n * H * W, P,
                     x + n * H * W, P, 1, dw + t * Cout * Cin, Cin));
    TIME("weight gradient, whole plane", flops, for (int t = 0; t < Taps; t++) {
         int s = shift(t), a = s < 0 ? -s : 0, b = s > 0 ? P - s : P;
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, Cin, b - a, 1, dy + a, P, x + a + s, P, 1,
                     dw + t * Cout * Cin, Cin); });
    const int S = 2048;
    float *a = filled((long)S * S), *c = filled((long)S * S);
    TIME("square 2048 sgemm", 2.0 * S * S * S,
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, S, S, 1, a, S, a, S, 0, c, S));
    return 0;
}
