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
// 16 below (CB 4, IB 1: 12). Floats in `pad` are (cin + cout) channel regions of
// ck_conv3x3_weight_gradient_stride floats; ck_conv3x3_weight_gradient_slots says how many
// slots fit.

#if CK_LANES >= 16
#define CK_WG_CB 4
#define CK_WG_IB 2
#else
#define CK_WG_CB 4
#define CK_WG_IB 1
#endif

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
                    dw[((size_t)(ki * 3 + kj) * cout + co + (size_t)c) * ldw + ci + (size_t)i] += HSUM(acc[c][i][kj]); \
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

static void CK_NAME(conv3x3_weight_gradient_rows)(const float *x, size_t ldx, const float *dy, size_t ldy, size_t cin,
                                                  size_t cout, size_t h, size_t w, size_t q0, size_t q1, float *dw,
                                                  size_t ldw, float *pad, size_t pad_floats) {
    const size_t plane = h * w, w1 = w + 1;
    const size_t most = ck_conv3x3_weight_gradient_slots(cin, cout, w, pad_floats);
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
        memset(pad, 0, (cin + cout) * stride * sizeof(float));
        float *xs = pad + 1, *ds = pad + cin * stride + 1;   // slot s of channel c: base + c·stride + s·w1
        // Slot 0: the row above the chunk's first row, or zeros.
        size_t slot = 0;
        {
            const size_t n = q / plane, i = (q % plane) / w;
            if (i > 0)
                for (size_t ci = 0; ci < cin; ci++)
                    memcpy(xs + ci * stride + 1, x + ci * ldx + n * plane + (i - 1) * w, w * sizeof(float));
        }
        last = (size_t)-1;
        size_t n = 0, i = 0;
        for (size_t at = q; at < end;) {
            n = at / plane; i = (at % plane) / w;
            const size_t row = n * plane + i * w, js = at - row, je = (end - row < w) ? end - row : w;
            if (last != (size_t)-1 && n != last) slot++;   // the zero slot between images
            slot++;
            last = n;
            for (size_t ci = 0; ci < cin; ci++)
                memcpy(xs + ci * stride + slot * w1 + 1, x + ci * ldx + row, w * sizeof(float));
            for (size_t co = 0; co < cout; co++)
                memcpy(ds + co * stride + slot * w1 + 1 + js, dy + co * ldy + row + js, (je - js) * sizeof(float));
            at = row + je;
        }
        // The last slot: the row below the chunk's last row, or zeros.
        if (i + 1 < h)
            for (size_t ci = 0; ci < cin; ci++)
                memcpy(xs + ci * stride + (slot + 1) * w1 + 1, x + ci * ldx + n * plane + (i + 1) * w, w * sizeof(float));
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
