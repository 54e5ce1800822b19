// The thin 3x3 convolution's weight gradient of one level (included by KernelTemplate.h;
// CKernels.h documents conv3x3_weight_gradient_rows):
//   dw[tap][co][ci] += Σ_q dy[co, q] · x[ci, q shifted by the tap]     (pad 1, stride 1)
// Per chunk of output rows, the rows of x and dy are copied into `pad` as one flat sequence of
// slots w + 1 floats wide: a slot holds a zero and then one row, consecutive rows of an image
// in consecutive slots, a zero slot between images and around the chunk (or the real row above
// and below where the chunk starts or ends inside an image). dy's row for output row r sits in
// the slot of x's row r, so every tap (ki, kj) is one flat offset (ki − 1)(w + 1) + (kj − 1):
// the zeros stand for the padding (the zero before a row is also the one after the row before),
// and each dW entry is a plain dot product over the chunk, with no masks and no tails (dy is
// zero past the chunk's last row, x readable there). Registers hold CB output channels × IB
// input channels × the 3 taps of one kernel row, each a vector of positions summed over the
// whole chunk and reduced once: CB + 3·IB loads feed 3·CB·IB multiply-adds, contracted into FMA
// where the level has it. 32 vector registers with AVX-512 (CB 4, IB 2: 24 accumulators),
// 16 below (CB 2, IB 2: 12 accumulators, 2 + 1 live loads; CB 4, IB 1 spilled and ran at half
// the speed on AVX2). Floats in `pad` are (cin + cout) channel regions of
// ck_conv3x3_weight_gradient_stride floats; ck_conv3x3_weight_gradient_slots says how many
// slots fit.

#if CK_LANES >= 16
#define CK_WG_CB 4
#define CK_WG_IB 2
#else
#define CK_WG_CB 2
#define CK_WG_IB 2
#endif

/// Σ of v's lanes by halving (log₂ lanes shuffles and adds, where HSUM's lane loop compiles to
/// scalar adds); the reductions run once per block and chunk, so their order only moves the
/// last bits.
CK_INLINE float CK_NAME(wg_hsum)(VF v) {
#if CK_LANES == 16
    typedef float half8 __attribute__((vector_size(32), aligned(4)));
    half8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
#define CK_WG_H8 1
#elif CK_LANES == 8
    VF a = v;
#define CK_WG_H8 1
#endif
#ifdef CK_WG_H8
#undef CK_WG_H8
    typedef float half4 __attribute__((vector_size(16), aligned(4)));
    half4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
#else
    VF b = v;
#endif
    typedef float half2 __attribute__((vector_size(8), aligned(4)));
    half2 c = __builtin_shufflevector(b, b, 0, 1) + __builtin_shufflevector(b, b, 2, 3);
    return c[0] + c[1];
}

/// dw[(ki·3 + kj), co + c, ci + i] += Σ_p dy_c[p] · x_i[p + (ki − 1)·w1 + kj − 1] over `vectors`
/// vectors of positions p, for the CB × IB channels from (co, ci): channel regions `stride`
/// floats apart, dyp and xp at the chunk's first position.
#define CK_WG_BLOCK(CB, IB)                                                                            \
CK_INLINE void CK_NAME(conv3x3_wg_block_##CB##_##IB)(const float *dyp, const float *xp, size_t stride,   \
        size_t w1, size_t vectors, size_t co, size_t ci, size_t cout, float *dw, size_t ldw) {           \
    _Pragma("clang fp contract(fast)")                                                                 \
    const float *d[CB];                                                                                \
    for (int c = 0; c < CB; c++) d[c] = dyp + (co + (size_t)c) * stride;                               \
    for (int ki = 0; ki < 3; ki++) {                                                                   \
        VF acc[CB][IB][3];                                                                             \
        for (int c = 0; c < CB; c++)                                                                   \
            for (int i = 0; i < IB; i++)                                                               \
                for (int kj = 0; kj < 3; kj++) acc[c][i][kj] = (VF){0};                                \
        const float *xr[IB];                                                                           \
        for (int i = 0; i < IB; i++) xr[i] = xp + (ci + (size_t)i) * stride + (ki - 1) * (ptrdiff_t)w1 - 1; \
        for (size_t p = 0; p < vectors * CK_LANES; p += CK_LANES) {                                    \
            VF dv[CB];                                                                                 \
            for (int c = 0; c < CB; c++) dv[c] = LOAD(d[c] + p);                                       \
            for (int i = 0; i < IB; i++)                                                               \
                for (int kj = 0; kj < 3; kj++) {                                                       \
                    VF xv = LOAD(xr[i] + p + kj);                                                      \
                    for (int c = 0; c < CB; c++) acc[c][i][kj] += dv[c] * xv;                          \
                }                                                                                      \
        }                                                                                              \
        for (int c = 0; c < CB; c++)                                                                   \
            for (int i = 0; i < IB; i++)                                                               \
                for (int kj = 0; kj < 3; kj++)                                                         \
                    dw[((size_t)(ki * 3 + kj) * cout + co + (size_t)c) * ldw + ci + (size_t)i] += CK_NAME(wg_hsum)(acc[c][i][kj]); \
    }                                                                                                  \
}

#define CK_WG_DEFINE(CB, IB) CK_WG_BLOCK(CB, IB)   // expands CK_WG_CB and CK_WG_IB before pasting
CK_WG_DEFINE(CK_WG_CB, CK_WG_IB)
CK_WG_DEFINE(1, CK_WG_IB)
#if CK_WG_IB > 1
CK_WG_DEFINE(CK_WG_CB, 1)
CK_WG_DEFINE(1, 1)
#endif

#define CK_WG_CALL2(CB, IB) CK_NAME(conv3x3_wg_block_##CB##_##IB)(dyp, xp, stride, w1, vectors, co, ci, cout, dw, ldw)
#define CK_WG_CALL(CB, IB) CK_WG_CALL2(CB, IB)

/// The sums of one chunk, its copies in place: output channels in blocks of CB (then one at a
/// time), input channels in blocks of IB (then one at a time).
static void CK_NAME(conv3x3_wg_chunk)(const float *dyp, const float *xp, size_t stride, size_t w1, size_t vectors,
                                      size_t cin, size_t cout, float *dw, size_t ldw) {
    for (size_t co = 0; co < cout;) {
        const int whole = co + CK_WG_CB <= cout;
        for (size_t ci = 0; ci < cin;) {
            if (ci + CK_WG_IB <= cin) {
                if (whole) CK_WG_CALL(CK_WG_CB, CK_WG_IB); else CK_WG_CALL(1, CK_WG_IB);
                ci += CK_WG_IB;
            } else {
                if (whole) CK_WG_CALL(CK_WG_CB, 1); else CK_WG_CALL(1, 1);
                ci += 1;
            }
        }
        co += whole ? CK_WG_CB : 1;
    }
}

/// Slot `slot` of `channels` regions `stride` floats apart from `base`: a zero, then columns
/// [js, je) of the rows at src (row stride ld) and zeros elsewhere, or all zeros without src.
/// With `prefetch`, asks for each channel's row CK_CONV3X3_PREFETCH_ROWS rows on, as
/// conv3x3_rows does (Conv3x3Template.h: short rows of many channels, one stream each).
static void CK_NAME(wg_slots)(float *base, size_t stride, size_t channels, size_t slot, const float *src, size_t ld,
                              size_t w, size_t js, size_t je, int prefetch) {
    for (size_t c = 0; c < channels; c++) {
        float *to = base + c * stride + slot * (w + 1);
        if (!src) { memset(to, 0, (w + 1) * sizeof(float)); continue; }
        memset(to, 0, (1 + js) * sizeof(float));
        memcpy(to + 1 + js, src + c * ld + js, (je - js) * sizeof(float));
        memset(to + 1 + je, 0, (w - je) * sizeof(float));
        if (prefetch) CK_NAME(prefetch_row)(src + c * ld + CK_CONV3X3_PREFETCH_ROWS * w, w, 0);
    }
}

static void CK_NAME(conv3x3_weight_gradient_rows)(const float *x, size_t ldx, const float *dy, size_t ldy, size_t cin,
                                                  size_t cout, size_t h, size_t w, size_t q0, size_t q1, float *dw,
                                                  size_t ldw, float *pad, size_t pad_floats) {
    const size_t plane = h * w, w1 = w + 1;
    const size_t most = ck_conv3x3_weight_gradient_slots(cin, cout, w, pad_floats);
    // Rows asked for ahead where x or dy is past the L2s (Conv3x3Template.h). Two threads, best
    // of 10, C on the development machine in a loud hour, alternated three times: 128→32 at
    // batch 8 56x56 (AVX-512) 10.20–10.92 → 9.54–10.02 ms; 48→12 at batch 64 32x32 (AVX2, where
    // this kernel takes it) 5.71–8.73 → 4.42–5.32.
    const int prefetch_x = cin * ldx * sizeof(float) >= CK_CONV3X3_PREFETCH_BYTES;
    const int prefetch_dy = cout * ldy * sizeof(float) >= CK_CONV3X3_PREFETCH_BYTES;
    if (most < 3) return;   // the caller checks that it fits (Conv2d+Microkernel.swift)
    size_t q = q0;
    while (q < q1) {
        // The chunk's rows: positions [q, end), as many as fit in `most` slots with the
        // separators between images and the slots above and below.
        size_t slots = 1, end = q, last = (size_t)-1;
        while (end < q1) {
            const size_t n = end / plane, row = n * plane + (end % plane) / w * w;
            const size_t need = (last != (size_t)-1 && n != last) ? 2 : 1;
            if (slots + need + 1 > most) break;
            slots += need;
            last = n;
            end = row + ((q1 - row < w) ? q1 - row : w);
        }
        slots += 1;
        const size_t stride = ck_conv3x3_weight_gradient_stride(slots, w);
        // Each region: `lead` zeros, so that slot 1 (the first summed) starts on a 16-float
        // boundary (pad and stride are multiples of 16 floats), the slots (written below, every
        // float of them), zeros after. Slot s of channel c: base + c·stride + s·w1.
        const size_t lead = 16 - w1 % 16;
        float *xs = pad + lead, *ds = pad + cin * stride + lead;
        for (size_t c = 0; c < cin + cout; c++) {
            memset(pad + c * stride, 0, lead * sizeof(float));
            memset(pad + c * stride + lead + slots * w1, 0, (stride - lead - slots * w1) * sizeof(float));
        }
        // Slot 0: the row above the chunk's first row, or zeros.
        size_t n = q / plane, i = (q % plane) / w, slot = 0;
        CK_NAME(wg_slots)(xs, stride, cin, 0, i > 0 ? x + n * plane + (i - 1) * w : NULL, ldx, w, 0, w, 0);
        CK_NAME(wg_slots)(ds, stride, cout, 0, NULL, 0, w, 0, w, 0);
        last = (size_t)-1;
        for (size_t at = q; at < end;) {
            n = at / plane; i = (at % plane) / w;
            const size_t row = n * plane + i * w, js = at - row, je = (end - row < w) ? end - row : w;
            if (last != (size_t)-1 && n != last) {   // the zero slot between images
                slot++;
                CK_NAME(wg_slots)(xs, stride, cin, slot, NULL, 0, w, 0, w, 0);
                CK_NAME(wg_slots)(ds, stride, cout, slot, NULL, 0, w, 0, w, 0);
            }
            slot++;
            last = n;
            CK_NAME(wg_slots)(xs, stride, cin, slot, x + row, ldx, w, 0, w, prefetch_x);
            CK_NAME(wg_slots)(ds, stride, cout, slot, dy + row, ldy, w, js, je, prefetch_dy);
            at = row + je;
        }
        // The last slot: the row below the chunk's last row, or zeros.
        CK_NAME(wg_slots)(xs, stride, cin, slot + 1, i + 1 < h ? x + n * plane + (i + 1) * w : NULL, ldx, w, 0, w, 0);
        CK_NAME(wg_slots)(ds, stride, cout, slot + 1, NULL, 0, w, 0, w, 0);
        // Positions from slot 1 to the last slot, whole vectors (dy is zero past them).
        const size_t count = slot * w1, vectors = (count + CK_LANES - 1) / CK_LANES;
        CK_NAME(conv3x3_wg_chunk)(ds + w1, xs + w1, stride, w1, vectors, cin, cout, dw, ldw);
        q = end;
    }
}

#undef CK_WG_CB
#undef CK_WG_IB
#undef CK_WG_BLOCK
#undef CK_WG_DEFINE
#undef CK_WG_CALL
#undef CK_WG_CALL2
