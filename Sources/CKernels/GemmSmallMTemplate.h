// A product with few output rows and a cache-resident right operand, without packing (included by
// KernelTemplate.h, once per level): C (m × n) = A (m × k) · B (k × n), all row-major with row
// strides, overwriting C. For the fused 1x1 convolution (Sources/Kernels/Conv2d+NormalizedInput.swift),
// whose B is a tile just normalised into L2 (k channels × n ≤ 512 positions) and whose A is the
// weights (m = a bottleneck's width, 48 or 128): OpenBLAS would copy the tile into its own panel
// again before multiplying. Registers hold GM_RB rows × GM_CV vectors of C; each step of k loads
// GM_CV vectors of B's row in place and broadcasts GM_RB weights. The reference is any product
// (Conv2dNormalizedInputTests compare with the unfused convolution).

#if CK_LANES >= 16
#define GM_RB 12
#elif CK_LANES >= 8
#define GM_RB 6
#else
#define GM_RB 4
#endif
#define GM_CV 2

#ifndef GM_PREFETCH_BYTES
/// gemm_small_m asks for B's next column block while it multiplies this one, into L2, when C has
/// at most GM_PREFETCH_MAX_ROWS rows (few row blocks to hide B's misses behind) and B is
/// GM_PREFETCH_BYTES or more (not in L3 already). Timed in C on the development machine (2
/// threads, each its half of the columns, best of 20, alternated twice; ms): 216→48 over 65,536
/// positions 8.26–8.39 → 7.49–7.54, 204→48 7.90–8.05 → 7.10–7.13, 120→48 4.58–4.72 → 4.29–4.35,
/// 300→48 over 16,384 2.79–2.80 → 2.57–2.65; below the bound 456→48 over 4,096 (7.5 MB of B)
/// 0.84 → 0.90–0.91 and 108→48 over 16,384 ±7 %; 128 rows (DenseNet-121) within ±3 %. Two
/// blocks ahead or more gained less; into L1 it lost 12–15 %.
#define GM_PREFETCH_MAX_ROWS 64
#define GM_PREFETCH_BYTES ((size_t)16 << 20)
#endif

// FMA where the level has it (AVX2, AVX-512); the target is built with -ffp-contract=off, so an
// explicit call. The baseline level (SSE2) has no FMA: multiply, then add.
#if CK_LANES >= 8
#define GM_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#else
#define GM_FMA(a, b, c) ((a) * (b) + (c))
#endif

/// A vector stored past the caches (`stream`): C written once and read much later, as the input
/// gradient of gemm_small_m's callers with stream set, need not be read into the cache first.
/// `p` is vector-aligned (gemm_small_m checks).
typedef float CK_NAME(vfa) __attribute__((vector_size(CK_LANES * 4), aligned(CK_LANES * 4)));
CK_INLINE void CK_NAME(gm_stream)(float *p, VF v) { __builtin_nontemporal_store((CK_NAME(vfa))v, (CK_NAME(vfa) *)p); }

/// How gemm_small_m's blocks put their sums into C.
enum { GM_STORE = 0, GM_STREAM = 1, GM_ADD = 2 };

/// RB rows × CV vectors of C at (i, j), k steps, C overwritten (streamed past the caches when
/// `mode` is GM_STREAM) or added to (GM_ADD). A's element (r, l) is a[r·ars + l·als]: (lda, 1)
/// row-major, (1, lda) transposed. With `skip` > 0 (a last vector that overlaps columns already
/// done, gemm_small_m's tail) only the columns from `skip` on are put into C, one at a time.
#define GM_BLOCK(RB, CV)                                                                               \
CK_INLINE void CK_NAME(gemm_small_m_block_##RB##_##CV)(const float *a, size_t ars, size_t als,         \
                                                       const float *b, size_t ldb, size_t k, float *c, \
                                                       size_t ldc, int mode, int skip) {               \
    VF acc[RB][CV];                                                                                    \
    _Pragma("clang loop unroll(full)") for (int r = 0; r < RB; r++)                                    \
        _Pragma("clang loop unroll(full)") for (int v = 0; v < CV; v++) acc[r][v] = SPLAT(0);          \
    for (size_t l = 0; l < k; l++) {                                                                   \
        VF bv[CV];                                                                                     \
        _Pragma("clang loop unroll(full)") for (int v = 0; v < CV; v++)                                \
            bv[v] = LOAD(b + l * ldb + v * CK_LANES);                                                  \
        _Pragma("clang loop unroll(full)") for (int r = 0; r < RB; r++) {                              \
            VF av = SPLAT(a[r * ars + l * als]);                                                       \
            _Pragma("clang loop unroll(full)") for (int v = 0; v < CV; v++)                            \
                acc[r][v] = GM_FMA(av, bv[v], acc[r][v]);                                              \
        }                                                                                              \
    }                                                                                                  \
    if (skip > 0) {                                                                                    \
        for (int r = 0; r < RB; r++)                                                                   \
            for (int col = skip; col < CV * CK_LANES; col++) {                                         \
                float sum = acc[r][col / CK_LANES][col % CK_LANES];                                    \
                c[r * ldc + col] = mode == GM_ADD ? c[r * ldc + col] + sum : sum;                      \
            }                                                                                          \
    } else if (mode == GM_STREAM) {                                                                    \
        _Pragma("clang loop unroll(full)") for (int r = 0; r < RB; r++)                                \
            _Pragma("clang loop unroll(full)") for (int v = 0; v < CV; v++)                            \
                CK_NAME(gm_stream)(c + r * ldc + v * CK_LANES, acc[r][v]);                             \
    } else if (mode == GM_ADD) {                                                                       \
        _Pragma("clang loop unroll(full)") for (int r = 0; r < RB; r++)                                \
            _Pragma("clang loop unroll(full)") for (int v = 0; v < CV; v++)                            \
                STORE(c + r * ldc + v * CK_LANES, LOAD(c + r * ldc + v * CK_LANES) + acc[r][v]);       \
    } else {                                                                                           \
        _Pragma("clang loop unroll(full)") for (int r = 0; r < RB; r++)                                \
            _Pragma("clang loop unroll(full)") for (int v = 0; v < CV; v++)                            \
                STORE(c + r * ldc + v * CK_LANES, acc[r][v]);                                          \
    }                                                                                                  \
}
#define GM_DEFINE(RB, CV) GM_BLOCK(RB, CV)
#define GM_CALL2(RB, CV) CK_NAME(gemm_small_m_block_##RB##_##CV)
#define GM_CALL(RB, CV) GM_CALL2(RB, CV)
GM_DEFINE(GM_RB, GM_CV)
#if GM_RB != 4
GM_DEFINE(4, GM_CV)
#endif
GM_DEFINE(1, GM_CV)
GM_DEFINE(GM_RB, 1)
GM_DEFINE(1, 1)

static void CK_NAME(gemm_small_m)(const float *a, size_t lda, const float *b, size_t ldb, size_t m, size_t n,
                                  size_t k, float *c, size_t ldc, int flags) {
    // Streaming stores need every vector of C aligned: C's start and its row stride.
    const int add = (flags & CK_GEMM_ACCUMULATE) != 0;
    const int stream = !add && (flags & CK_GEMM_STREAM) && (uintptr_t)c % (CK_LANES * 4) == 0 && ldc % CK_LANES == 0;
    const int mode = add ? GM_ADD : stream ? GM_STREAM : GM_STORE;
    const size_t ars = (flags & CK_GEMM_A_TRANSPOSED) ? 1 : lda, als = (flags & CK_GEMM_A_TRANSPOSED) ? lda : 1;
    // B's rows are read a short piece at a time (one block of columns), each row its own stream,
    // far apart: the hardware prefetchers seem not to follow them (GM_PREFETCH_BYTES).
    const int prefetch = m <= GM_PREFETCH_MAX_ROWS && k * ldb * sizeof(float) >= GM_PREFETCH_BYTES;
#define GM_ARGS(i, j) a + (i) * ars, ars, als, b + (j), ldb, k, c + (i) * ldc + (j), ldc, mode, 0
    size_t j = 0;
    // Column blocks of GM_CV vectors, then of one vector; rows in blocks of GM_RB, then smaller.
    for (; j + GM_CV * CK_LANES <= n; j += GM_CV * CK_LANES) {
        if (prefetch && j + 2 * GM_CV * CK_LANES <= n)
            for (size_t l = 0; l < k; l++) CK_NAME(prefetch_row)(b + l * ldb + j + GM_CV * CK_LANES, GM_CV * CK_LANES, 0);
        size_t i = 0;
        for (; i + GM_RB <= m; i += GM_RB) GM_CALL(GM_RB, GM_CV)(GM_ARGS(i, j));
        // The rows left (128 = 10·12 + 2·4 on AVX-512): blocks of 4, then one by one.
        for (; i + 4 <= m; i += 4) GM_CALL(4, GM_CV)(GM_ARGS(i, j));
        for (; i < m; i++) GM_CALL(1, GM_CV)(GM_ARGS(i, j));
    }
    for (; j + CK_LANES <= n; j += CK_LANES) {
        size_t i = 0;
        for (; i + GM_RB <= m; i += GM_RB) GM_CALL(GM_RB, 1)(GM_ARGS(i, j));
        for (; i < m; i++) GM_CALL(1, 1)(GM_ARGS(i, j));
    }
#undef GM_ARGS
    // The last columns (fewer than a vector): a vector ending at column n that overlaps the
    // columns before, where there are enough columns; else scalar, summed in order (l ascending).
    if (j < n && n >= CK_LANES) {
        const size_t jt = n - CK_LANES;
        const int skip = (int)(j - jt);
        size_t i = 0;
        for (; i + GM_RB <= m; i += GM_RB)
            GM_CALL(GM_RB, 1)(a + i * ars, ars, als, b + jt, ldb, k, c + i * ldc + jt, ldc, mode, skip);
        for (; i < m; i++)
            GM_CALL(1, 1)(a + i * ars, ars, als, b + jt, ldb, k, c + i * ldc + jt, ldc, mode, skip);
        j = n;
    }
    for (; j < n; j++) {
        for (size_t i = 0; i < m; i++) {
            float s = 0;
            for (size_t l = 0; l < k; l++) s += a[i * ars + l * als] * b[l * ldb + j];
            c[i * ldc + j] = add ? c[i * ldc + j] + s : s;
        }
    }
    // Streamed stores are weakly ordered: fence them before the caller hands C to another thread.
    if (stream) __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

#if CK_LANES == 16
#define GM_HALVES(h)                                                                                   \
    ((h) == 8 ? (GM_LO(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),                          \
                 GM_HI(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31)) :                  \
     (h) == 4 ? (GM_LO(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),                        \
                 GM_HI(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31)) :                    \
     (h) == 2 ? (GM_LO(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),                        \
                 GM_HI(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31)) :                    \
                (GM_LO(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),                       \
                 GM_HI(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31)))
#elif CK_LANES == 8
#define GM_HALVES(h)                                                                                   \
    ((h) == 4 ? (GM_LO(0, 1, 2, 3, 8, 9, 10, 11), GM_HI(4, 5, 6, 7, 12, 13, 14, 15)) :                   \
     (h) == 2 ? (GM_LO(0, 1, 8, 9, 4, 5, 12, 13), GM_HI(2, 3, 10, 11, 6, 7, 14, 15)) :                   \
                (GM_LO(0, 8, 2, 10, 4, 12, 6, 14), GM_HI(1, 9, 3, 11, 5, 13, 7, 15)))
#else
#define GM_HALVES(h)                                                                                   \
    ((h) == 2 ? (GM_LO(0, 1, 4, 5), GM_HI(2, 3, 6, 7)) : (GM_LO(0, 4, 2, 6), GM_HI(1, 5, 3, 7)))
#endif

/// v[0..<CK_LANES] (rows of a CK_LANES × CK_LANES tile) transposed in registers: each step pairs
/// rows h apart and takes h-lane halves of each 2h-lane block (h = CK_LANES/2, …, 1); after the
/// last, vector i is column i.
CK_INLINE void CK_NAME(transpose_tile)(VF *v) {
    for (int h = CK_LANES / 2; h >= 1; h /= 2) {
        for (int i = 0; i < CK_LANES; i++) {
            if (i & h) continue;
            VF lo = v[i], hi = v[i + h];
#define GM_LO(...) (v[i] = __builtin_shufflevector(lo, hi, __VA_ARGS__))
#define GM_HI(...) (v[i + h] = __builtin_shufflevector(lo, hi, __VA_ARGS__))
            (void)GM_HALVES(h);
#undef GM_LO
#undef GM_HI
        }
    }
}

/// dst (cols × rows, row stride ldd) = src (rows × cols, row stride lds) transposed: tiles of
/// CK_LANES × CK_LANES transposed in registers (`transpose_tile`), the edges one float at a time.
static void CK_NAME(transpose)(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd) {
    size_t r = 0;
    for (; r + CK_LANES <= rows; r += CK_LANES) {
        size_t c = 0;
        for (; c + CK_LANES <= cols; c += CK_LANES) {
            VF v[CK_LANES];
            for (int i = 0; i < CK_LANES; i++) v[i] = LOAD(src + (r + (size_t)i) * lds + c);
            CK_NAME(transpose_tile)(v);
            for (int i = 0; i < CK_LANES; i++) STORE(dst + (c + (size_t)i) * ldd + r, v[i]);
        }
        for (; c < cols; c++)
            for (size_t i = r; i < r + CK_LANES; i++) dst[c * ldd + i] = src[i * lds + c];
    }
    for (; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

/// The BN/ReLU of `channels` rows of x (row stride ldx) over `width` positions, written
/// transposed: t[p·ldt + c] = relu((x[c·ldx + p] − mean[c])·scale + beta[c]) with scale =
/// gamma[c]·invStd[c], the expression and rounding of normalize_row (no contraction) and of its
/// callers' scale, so the same bits as their tile. Blocks of CK_LANES channels × CK_LANES
/// positions are normalised and transposed in registers.
static void CK_NAME(normalize_transposed)(const float *x, size_t ldx, size_t channels, size_t width,
                                         const float *mean, const float *gamma, const float *inv_std,
                                         const float *beta, float *t, size_t ldt) {
    if (channels < CK_LANES || width < CK_LANES) {
        for (size_t c = 0; c < channels; c++)
            for (size_t p = 0; p < width; p++) {
                float u = (x[c * ldx + p] - mean[c]) * (gamma[c] * inv_std[c]) + beta[c];
                t[p * ldt + c] = u < 0 ? 0 : u;
            }
        return;
    }
    const VF zero = {0};
    // The last block of each direction ends at the edge and overlaps the one before: its
    // elements are written twice, with the same values.
    for (size_t cb = 0; cb < channels; cb += CK_LANES) {
        const size_t c0 = cb + CK_LANES <= channels ? cb : channels - CK_LANES;
        VF m[CK_LANES], s[CK_LANES], b[CK_LANES];
        for (int i = 0; i < CK_LANES; i++) {
            size_t c = c0 + (size_t)i;
            m[i] = SPLAT(mean[c]); s[i] = SPLAT(gamma[c] * inv_std[c]); b[i] = SPLAT(beta[c]);
        }
        for (size_t pb = 0; pb < width; pb += CK_LANES) {
            const size_t p = pb + CK_LANES <= width ? pb : width - CK_LANES;
            VF v[CK_LANES];
            for (int i = 0; i < CK_LANES; i++) {
                VF u = (LOAD(x + (c0 + (size_t)i) * ldx + p) - m[i]) * s[i] + b[i];
                v[i] = ZERO_WHERE(u, u < zero);
            }
            CK_NAME(transpose_tile)(v);
            for (int i = 0; i < CK_LANES; i++) STORE(t + (p + (size_t)i) * ldt + c0, v[i]);
        }
    }
}
#undef GM_HALVES

static void CK_NAME(pointwise_weight_gradient_rows)(const float *x, size_t ldx, const float *dy, size_t lddy,
                                                    size_t cin, size_t cout, size_t p0, size_t p1, float *dwt,
                                                    float *strip, int accumulate) {
    if (p0 >= p1 && !accumulate) memset(dwt, 0, cin * cout * sizeof(float));
    for (size_t j = p0; j < p1; j += CK_POINTWISE_WEIGHT_GRADIENT_STRIP) {
        size_t n = p1 - j < CK_POINTWISE_WEIGHT_GRADIENT_STRIP ? p1 - j : CK_POINTWISE_WEIGHT_GRADIENT_STRIP;
        CK_NAME(transpose)(dy + j, lddy, cout, n, strip, cout);
        CK_NAME(gemm_small_m)(x + j, ldx, strip, cout, cin, cout, n, dwt, cout,
                              accumulate || j > p0 ? CK_GEMM_ACCUMULATE : 0);
    }
}

#undef GM_RB
#undef GM_CV
#undef GM_FMA
#undef GM_BLOCK
#undef GM_DEFINE
#undef GM_CALL2
#undef GM_CALL
