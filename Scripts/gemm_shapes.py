#!/usr/bin/env python3
"""Why the thin 3x3 convolution of DenseNet-BC (48 -> 12 channels) runs below the GEMM limit:
one thread's share of its products, as the per-tap path issues them today (one product per image
and kernel tap, n = 992 columns) and as whole-plane products (n = 32k) would, next to im2col and
a square sgemm. Calls OpenBLAS's cblas_sgemm directly (numpy for the buffers, one thread):

  OPENBLAS_CORETYPE=Haswell python3 Scripts/gemm_shapes.py

Shapes: DenseNet-BC-100 block 1 at batch 64 split over two threads (32 images of 32x32).
Results are cited in Papers/reproduction.md ("Where the time goes").
"""
import ctypes, numpy as np, time, os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
lib = ctypes.CDLL("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")
lib.openblas_set_num_threads(1)
RowMajor, NoTrans, Trans = 101, 111, 112
f = ctypes.c_float; i = ctypes.c_int; p = ctypes.c_void_p
lib.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
def sgemm(tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc, aoff=0, boff=0, coff=0):
    lib.cblas_sgemm(RowMajor, Trans if tA else NoTrans, Trans if tB else NoTrans, m, n, k, 1.0,
                    a.ctypes.data + 4*aoff, lda, b.ctypes.data + 4*boff, ldb, beta, c.ctypes.data + 4*coff, ldc)
def bench(name, fn, flops, reps=5):
    fn(); ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    t = min(ts); print(f"{name:55s} {t*1e3:8.2f} ms {flops/t/1e9:7.1f} GFLOP/s")
# one thread's half of BC-100 block1 3x3: Cin=48, Cout=12, N=32 images of 32x32
Cin, Cout, H, W, N = 48, 12, 32, 32, 32
P = N*H*W
x = np.random.rand(Cin, P).astype(np.float32); y = np.zeros((Cout, P), np.float32)
w = np.random.rand(9, Cout, Cin).astype(np.float32)
fl = 2*Cout*Cin*9*P
def per_image():
    for n in range(N):
        for tap in range(9):
            sgemm(0, 0, Cout, H*W - 32, Cin, w[tap], Cin, x, P, 1.0, y, P, boff=n*H*W, coff=n*H*W)
def whole():
    for tap in range(9):
        sgemm(0, 0, Cout, P - 64, Cin, w[tap], Cin, x, P, 1.0, y, P, boff=32)
bench("fwd per image per tap (n=992,k=48,m=12)", per_image, fl)
bench("fwd whole plane per tap (n=32k)", whole, fl)
Pp = N*34*34
xp = np.random.rand(Cin, Pp).astype(np.float32); yp = np.zeros((Cout, Pp), np.float32)
def padded():
    xp[:, :P] = x  # stand-in for the pad copy cost
    for tap in range(9):
        sgemm(0, 0, Cout, Pp - 70, Cin, w[tap], Cin, xp, Pp, 1.0, yp, Pp, boff=35)
bench("fwd padded plane per tap incl. copy", padded, fl)
cols = np.random.rand(Cin*9, P).astype(np.float32)
wf = np.random.rand(Cout, Cin*9).astype(np.float32)
bench("fwd im2col GEMM only (m=12,k=432,n=32k)", lambda: sgemm(0,0,Cout,P,Cin*9,wf,Cin*9,cols,P,0.0,y,P), fl)
# backward dx per tap: dx (48 x n) += W_tap^T (48x12) dy (12 x n)
dy = np.random.rand(Cout, P).astype(np.float32); dx = np.zeros((Cin, P), np.float32)
def dx_per_image():
    for n in range(N):
        for tap in range(9):
            sgemm(1, 0, Cin, H*W-32, Cout, w[tap], Cin, dy, P, 1.0, dx, P, boff=n*H*W, coff=n*H*W)
def dx_whole():
    for tap in range(9):
        sgemm(1, 0, Cin, P-64, Cout, w[tap], Cin, dy, P, 1.0, dx, P, boff=32)
bench("dx per image per tap (m=48,k=12,n=992)", dx_per_image, fl)
bench("dx whole plane per tap", dx_whole, fl)
wt = np.random.rand(Cin, Cout*9).astype(np.float32)
dycols = np.random.rand(Cout*9, P).astype(np.float32)
bench("dx as one GEMM over im2col(dy) (m=48,k=108)", lambda: sgemm(0,0,Cin,P,Cout*9,wt,Cout*9,dycols,P,0.0,dx,P), fl)
# dW per tap: (12 x 48) += dy (12 x n) x^T (n x 48)
dw = np.zeros((9, Cout, Cin), np.float32)
def dw_per_image():
    for n in range(N):
        for tap in range(9):
            sgemm(0, 1, Cout, Cin, H*W-32, dy, P, x, P, 1.0, dw[tap], Cin, aoff=n*H*W, boff=n*H*W)
def dw_whole():
    for tap in range(9):
        sgemm(0, 1, Cout, Cin, P-64, dy, P, x, P, 1.0, dw[tap], Cin, boff=32)
bench("dW per image per tap", dw_per_image, fl)
bench("dW whole plane per tap", dw_whole, fl)
a = np.random.rand(2048, 2048).astype(np.float32); c = np.zeros_like(a)
bench("square 2048 (1 thread)", lambda: sgemm(0,0,2048,2048,2048,a,2048,a,2048,0.0,c,2048), 2*2048**3, reps=3)
