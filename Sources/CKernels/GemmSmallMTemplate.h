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

/// RB rows × CV vectors of C at (i, j), k steps, C overwritten (streamed past the caches when
/// `stream`). A's element (r, l) is a[r·ars + l·als]: (lda, 1) row-major, (1, lda) transposed.
#define GM_BLOCK(RB, CV)                                                                               \
CK_INLINE void CK_NAME(gemm_small_m_block_##RB##_##CV)(const float *a, size_t ars, size_t als,         \
                                                       const float *b, size_t ldb, size_t k, float *c, \
                                                       size_t ldc, int stream) {                       \
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
    if (stream) {                                                                                      \
        _Pragma("clang loop unroll(full)") for (int r = 0; r < RB; r++)                                \
            _Pragma("clang loop unroll(full)") for (int v = 0; v < CV; v++)                            \
                CK_NAME(gm_stream)(c + r * ldc + v * CK_LANES, acc[r][v]);                             \
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
    int stream = (flags & CK_GEMM_STREAM) && (uintptr_t)c % (CK_LANES * 4) == 0 && ldc % CK_LANES == 0;
    const size_t ars = (flags & CK_GEMM_A_TRANSPOSED) ? 1 : lda, als = (flags & CK_GEMM_A_TRANSPOSED) ? lda : 1;
    // B's rows are read a short piece at a time (one block of columns), each row its own stream,
    // far apart: the hardware prefetchers seem not to follow them (GM_PREFETCH_BYTES).
    const int prefetch = m <= GM_PREFETCH_MAX_ROWS && k * ldb * sizeof(float) >= GM_PREFETCH_BYTES;
#define GM_ARGS(i, j) a + (i) * ars, ars, als, b + (j), ldb, k, c + (i) * ldc + (j), ldc, stream
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
    // The last columns (fewer than a vector): scalar, summed in the same order (l ascending).
    for (; j < n; j++) {
        for (size_t i = 0; i < m; i++) {
            float s = 0;
            for (size_t l = 0; l < k; l++) s += a[i * ars + l * als] * b[l * ldb + j];
            c[i * ldc + j] = s;
        }
    }
    // Streamed stores are weakly ordered: fence them before the caller hands C to another thread.
    if (stream) __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

#undef GM_RB
#undef GM_CV
#undef GM_FMA
#undef GM_BLOCK
#undef GM_DEFINE
#undef GM_CALL2
#undef GM_CALL
