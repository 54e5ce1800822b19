// The level-independent halves of the thin 3x3 kernel (CKernels.h): weight packing and the
// size of its padded-row buffer, and the sizes of the weight gradient's slots.
#include "CKernels.h"

size_t ck_conv3x3_pad_floats(size_t cin, size_t w) {
    size_t stride = (w + 2 + 16 + 15) / 16 * 16;   // a row, its two zeros and one 16-lane vector of slack
    return cin * 3 * stride;
}

void ck_conv3x3_pack(const float *weight, size_t cout, size_t cin, int transpose_flip, size_t block, float *packed) {
    // Output channels `outs` over input channels `ins` of the convolution the kernel computes.
    size_t outs = transpose_flip ? cin : cout, ins = transpose_flip ? cout : cin;
    for (size_t o = 0; o < outs; o++) {
        size_t first = o / block * block, lane = o % block;
        float *dst = packed + first * ins * 9;
        for (size_t i = 0; i < ins; i++)
            for (size_t tap = 0; tap < 9; tap++) {
                float v = transpose_flip ? weight[(i * cin + o) * 9 + (8 - tap)] : weight[(o * cin + i) * 9 + tap];
                dst[(i * 9 + tap) * block + lane] = v;
            }
    }
}

size_t ck_conv3x3_weight_gradient_stride(size_t slots, size_t w) {
    // 1–16 leading zeros (so that the slots' positions start on a vector boundary), the slots,
    // a 16-lane vector of slack.
    return (16 + slots * (w + 1) + 16 + 15) / 16 * 16;
}

size_t ck_conv3x3_weight_gradient_slots(size_t cin, size_t cout, size_t w, size_t floats) {
    if (cin + cout == 0) return 0;
    size_t most = floats / (cin + cout) / 16 * 16;      // the widest stride that fits
    if (most < 16 + 16) return 0;
    size_t slots = (most - 16 - 16) / (w + 1);
    return slots >= 3 ? slots : 0;
}

size_t ck_conv3x3_weight_gradient_floats(size_t cin, size_t cout, size_t w) {
    return (cin + cout) * ck_conv3x3_weight_gradient_stride(3, w);
}
