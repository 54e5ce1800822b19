// The thin direct 3x3 convolution of one level (included by KernelTemplate.h; CKernels.h
// documents conv3x3_rows). The input rows of every input channel are copied into zero-padded
// rows (so no tap needs a mask), a ring of three per channel: input row r lives in slot r mod 3
// and is copied once for the three output rows that read it. Per output row, each block of CB output
// channels × V vectors of the row is summed in registers over every (ci, tap): V vector loads
// and CB broadcasts feed CB·V multiply-adds, contracted into FMA where the level has it (unlike
// the batch-norm rows, whose bits must match the Swift references; these are compared with a
// tolerance). CB·V accumulators fit the level's registers: 16 vector registers below AVX-512
// (CB 4, V ≤ 2), 32 with it (CB 12 with V ≤ 2, CB 8 with V ≤ 3, CB 4 with V ≤ 4).

#ifndef CK_CONV3X3_PREFETCH_ROWS
/// How many rows ahead conv3x3_rows asks for input and output rows (2: at 1 the 48→12 forward
/// gained nothing, at 3 a little less than at 2), and from what size of input or output on
/// (4 MiB, past the L2s: from 1 MiB the 48→12 input gradient at 16x16, in L3, lost 2–3 %).
#define CK_CONV3X3_PREFETCH_ROWS 2
#define CK_CONV3X3_PREFETCH_BYTES ((size_t)4 << 20)
#endif

/// acc[c][v] = Σ over ci and the taps of rows [klo, khi) of w·pad for the V vectors from column
/// j, then stored (or added) into out[c] at the columns inside [js, je).
#define CK_CONV_BLOCK(CB, V)                                                                           \
CK_INLINE void CK_NAME(conv3x3_block_##CB##_##V)(const float *pad, size_t stride, const size_t *slot,    \
        const float *wp, size_t cin, int klo, int khi, size_t j, float *const *out, size_t js, size_t je,  \
        int accumulate) {                                                                               \
    _Pragma("clang fp contract(fast)")                                                                 \
    VF acc[CB][V];                                                                                     \
    for (int c = 0; c < CB; c++)                                                                       \
        for (int v = 0; v < V; v++) acc[c][v] = (VF){0};                                               \
    for (size_t ci = 0; ci < cin; ci++) {                                                              \
        const float *rows = pad + ci * 3 * stride + j;                                                 \
        const float *wc = wp + ci * 9 * CB;                                                            \
        for (int ki = klo; ki < khi; ki++) {                                                           \
            for (int kj = 0; kj < 3; kj++) {                                                           \
                VF xv[V];                                                                              \
                for (int v = 0; v < V; v++) xv[v] = LOAD(rows + slot[ki] + kj + v * CK_LANES);        \
                const float *wt = wc + (ki * 3 + kj) * CB;                                             \
                for (int c = 0; c < CB; c++) {                                                         \
                    VF wv = SPLAT(wt[c]);                                                              \
                    for (int v = 0; v < V; v++) acc[c][v] += wv * xv[v];                               \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
    for (int c = 0; c < CB; c++)                                                                       \
        for (int v = 0; v < V; v++) {                                                                  \
            size_t at = j + (size_t)v * CK_LANES;                                                      \
            if (at >= js && at + CK_LANES <= je) {                                                     \
                STORE(out[c] + at, accumulate ? LOAD(out[c] + at) + acc[c][v] : acc[c][v]);            \
            } else {                                                                                   \
                for (int l = 0; l < CK_LANES; l++) {                                                   \
                    size_t col = at + (size_t)l;                                                       \
                    if (col >= js && col < je) out[c][col] = accumulate ? out[c][col] + acc[c][v][l] : acc[c][v][l]; \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
}

/// One output row's columns [js, je), all output channels, in blocks of CB, V ≤ VMAX vectors.
#define CK_CONV_ROW(CB, VMAX)                                                                          \
static void CK_NAME(conv3x3_row_##CB)(const float *pad, size_t stride, const size_t *slot, const float *packed, size_t cin, \
        size_t cout, int klo, int khi, float *y, size_t ldy, size_t row, size_t js, size_t je, int accumulate) { \
    const size_t first = js - js % CK_LANES;                                                           \
    for (size_t co = 0; co < cout; co += CB) {                                                         \
        const float *wp = packed + co * cin * 9;                                                       \
        float *out[CB];                                                                                \
        for (int c = 0; c < CB; c++) out[c] = y + (co + (size_t)c) * ldy + row;                        \
        for (size_t j = first; j < je;) {                                                              \
            size_t vectors = (je - j + CK_LANES - 1) / CK_LANES;                                       \
            if (vectors > VMAX) vectors = VMAX;                                                        \
            CK_CONV_DISPATCH_##CB(vectors)                                                             \
            j += vectors * CK_LANES;                                                                   \
        }                                                                                              \
    }                                                                                                  \
}

#define CK_CALL(CB, V) CK_NAME(conv3x3_block_##CB##_##V)(pad, stride, slot, wp, cin, klo, khi, j, out, js, je, accumulate)

CK_CONV_BLOCK(4, 1)
CK_CONV_BLOCK(4, 2)
#if CK_LANES >= 16
CK_CONV_BLOCK(4, 3)
CK_CONV_BLOCK(4, 4)
CK_CONV_BLOCK(8, 1)
CK_CONV_BLOCK(8, 2)
CK_CONV_BLOCK(8, 3)
CK_CONV_BLOCK(12, 1)
CK_CONV_BLOCK(12, 2)
#define CK_CONV_DISPATCH_4(v) switch (v) { case 4: CK_CALL(4, 4); break; case 3: CK_CALL(4, 3); break; \
    case 2: CK_CALL(4, 2); break; default: CK_CALL(4, 1); }
#define CK_CONV_DISPATCH_8(v) switch (v) { case 3: CK_CALL(8, 3); break; case 2: CK_CALL(8, 2); break; \
    default: CK_CALL(8, 1); }
#define CK_CONV_DISPATCH_12(v) switch (v) { case 2: CK_CALL(12, 2); break; default: CK_CALL(12, 1); }
CK_CONV_ROW(4, 4)
CK_CONV_ROW(8, 3)
CK_CONV_ROW(12, 2)
#else
#define CK_CONV_DISPATCH_4(v) switch (v) { case 2: CK_CALL(4, 2); break; default: CK_CALL(4, 1); }
CK_CONV_ROW(4, 2)
#endif

static size_t CK_NAME(conv3x3_block_size)(size_t cout) {
#if CK_LANES >= 16
    if (cout % 12 == 0) return 12;
    if (cout % 8 == 0) return 8;
#endif
    return cout % 4 == 0 && cout > 0 ? 4 : 0;
}

static void CK_NAME(conv3x3_rows)(const float *x, size_t ldx, const float *packed, size_t block, size_t cin,
                                  size_t cout, size_t h, size_t w, size_t q0, size_t q1, float *y, size_t ldy,
                                  int accumulate, float *pad) {
    const size_t plane = h * w, stride = ck_conv3x3_pad_floats(1, w) / 3;
    // Zero once: the copies below only ever write columns 1 ... w of a row.
    memset(pad, 0, cin * 3 * stride * sizeof(float));
    size_t held[3] = {(size_t)-1, (size_t)-1, (size_t)-1};   // input row (n·h + r) in each slot
    // Rows of an input or output larger than an L2 are asked for CK_CONV3X3_PREFETCH_ROWS rows
    // ahead: each channel's rows are a stream of their own, read one short row per output row,
    // which the hardware prefetchers seem not to follow: without it every output row waited on
    // misses from cin (or cout) rows. Two threads, 48→12 at batch 64 32x32: forward 4.0 → 3.4
    // ms, input gradient 4.1 → 3.5 (timed in C on the development machine;
    // Papers/design-notes.md).
    const int prefetch_in = cin * ldx * sizeof(float) >= CK_CONV3X3_PREFETCH_BYTES;
    const int prefetch_out = cout * ldy * sizeof(float) >= CK_CONV3X3_PREFETCH_BYTES;
    size_t q = q0;
    while (q < q1) {
        const size_t n = q / plane, i = (q % plane) / w;
        const size_t row = n * plane + i * w;                 // position of column 0 of this output row
        const size_t js = q - row, je = (q1 - row < w) ? q1 - row : w;
        const int klo = i == 0 ? 1 : 0, khi = i + 1 == h ? 2 : 3;
        size_t slot[3] = {0, 0, 0};                           // offset of the row each ki reads
        for (int ki = klo; ki < khi; ki++) {
            const size_t r = i + (size_t)ki - 1, s = r % 3, tag = n * h + r;
            slot[ki] = s * stride;
            if (held[s] == tag) continue;
            held[s] = tag;
            for (size_t ci = 0; ci < cin; ci++) {
                const float *src = x + ci * ldx + n * plane + r * w;
                memcpy(pad + (ci * 3 + s) * stride + 1, src, w * sizeof(float));
                if (prefetch_in && r + CK_CONV3X3_PREFETCH_ROWS < h)
                    CK_NAME(prefetch_row)(src + CK_CONV3X3_PREFETCH_ROWS * w, w, 0);
            }
        }
        if (prefetch_out && i + CK_CONV3X3_PREFETCH_ROWS < h)
            for (size_t co = 0; co < cout; co++)
                CK_NAME(prefetch_row)(y + co * ldy + row + CK_CONV3X3_PREFETCH_ROWS * w, w, 1);
        switch (block) {
#if CK_LANES >= 16
        case 12: CK_NAME(conv3x3_row_12)(pad, stride, slot, packed, cin, cout, klo, khi, y, ldy, row, js, je, accumulate); break;
        case 8: CK_NAME(conv3x3_row_8)(pad, stride, slot, packed, cin, cout, klo, khi, y, ldy, row, js, je, accumulate); break;
#endif
        default: CK_NAME(conv3x3_row_4)(pad, stride, slot, packed, cin, cout, klo, khi, y, ldy, row, js, je, accumulate); break;
        }
        q = row + je;
    }
}

#undef CK_CONV_BLOCK
#undef CK_CONV_ROW
#undef CK_CALL
#undef CK_CONV_DISPATCH_4
#undef CK_CONV_DISPATCH_8
#undef CK_CONV_DISPATCH_12
