#!/usr/bin/env bash
# Checks that a binary of ours runs on any x86-64 CPU (issue 13): every instruction that uses an
# AVX register (%ymm, %zmm) must sit in a function of the per-level C kernels (Sources/CKernels,
# names ending in _avx2 or _avx512, chosen at run time by cpuid), never in the Swift modules or
# the baseline kernels. Shared libraries (OpenBLAS dispatches by CPU itself) are not checked.
#   Scripts/check_portable_binary.sh [.build/release/bench-memory ...]
set -euo pipefail
[ $# -gt 0 ] || set -- .build/debug/bench-memory
command -v objdump >/dev/null || { echo "check_portable_binary.sh: objdump not found (apt-get install binutils)" >&2; exit 2; }
status=0
for binary in "$@"; do
    [ -f "$binary" ] || { echo "check_portable_binary.sh: no such file: $binary (build it first)" >&2; exit 2; }
    offenders=$(objdump -d --no-show-raw-insn "$binary" |
        awk '/^[0-9a-f]+ <.*>:$/ { fn = $2; next } /%[yz]mm[0-9]/ { print fn }' |
        sort -u | grep -v -E '_(avx2|avx512)>:$' || true)
    levels=$(objdump -d --no-show-raw-insn "$binary" |
        awk '/^[0-9a-f]+ <.*>:$/ { fn = $2; next } /%[yz]mm[0-9]/ { print fn }' | sort -u | grep -c -E '_(avx2|avx512)>:$' || true)
    if [ -n "$offenders" ]; then
        echo "$binary: AVX registers outside the per-level kernels in:"; echo "$offenders" | head -20
        status=1
    else
        echo "$binary: ok (AVX registers only in $levels per-level kernel functions)"
    fi
done
exit $status
