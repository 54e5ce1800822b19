#!/usr/bin/env bash
# Packs bench-memory and bench-kernels, built with the Swift standard library linked in,
# with the shared libraries they load, into .devcarry/pack.tar.xz: what runs on a machine without
# Swift or our Debian packages, such as a lent 16-core server (../shared/reference/scaling-notes.md,
# whose steps this follows). Then prints the one command to run there, sized for a 10-minute call.
#
#   Scripts/make_static_pack.sh            # build (a release build in .build-static) and pack
#
# On the other machine, from the repository root with .devcarry carried:
#   python3 Scripts/thread_scaling.py --pack .devcarry/pack.tar.xz ...   (our binaries, and PyTorch
#   where torch imports), or by hand:
#   mkdir -p run && tar xJf .devcarry/pack.tar.xz -C run
#   LD_LIBRARY_PATH=run/lib run/bench-memory --model densenet121 --batch 8 --threads 16 --profile
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release --static-swift-stdlib --scratch-path .build-static \
    --product bench-memory >/dev/null
swift build -c release --static-swift-stdlib --scratch-path .build-static \
    --product bench-kernels >/dev/null

# .devcarry stays out of git (this clone only).
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
rm -rf .devcarry/stage && mkdir -p .devcarry/stage/lib
# Each is ~60 MB with Foundation linked in; densenet is left out so that the pack (~35 MB) and the
# working tree stay under a device call's 64 MiB.
for tool in bench-memory bench-kernels; do
    cp .build-static/release/$tool .devcarry/stage/
    strip .devcarry/stage/$tool
done
# Every shared library the binaries load outside the C library itself.
ldd .devcarry/stage/bench-memory .devcarry/stage/bench-kernels | awk '/=> \//{print $3}' | sort -u |
    grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" .devcarry/stage/lib/; done
(cd .devcarry/stage && tar cf - bench-memory bench-kernels lib | xz -T2 -6 > ../pack.tar.xz)
rm -rf .devcarry/stage

# The pack must run on its own: ask the packed bench-memory for its help with only lib/.
check=$(mktemp -d)
tar xJf .devcarry/pack.tar.xz -C "$check"
LD_LIBRARY_PATH="$check/lib" "$check/bench-memory" --help >/dev/null
rm -rf "$check"

echo "wrote .devcarry/pack.tar.xz ($(du -h .devcarry/pack.tar.xz | cut -f1)); on a lent machine, carry [\".devcarry\"] and run:"
echo "  python3 Scripts/thread_scaling.py --pack .devcarry/pack.tar.xz --configs bc100,densenet121 \\"
echo "      --threads 2,4,8,16 --strategies naive,shared,minimal,fused --steps 3 --warmup 1 --profile --out \$OUT/scaling"
