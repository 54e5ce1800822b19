# Sourced by the Scripts/exercise*.sh scripts: the binaries, the output folder, the machine.
#   DENSENET, BENCH_MEMORY   built binaries to use (default: build them, release)
#   OUT                      the results folder (default: results/<name>-<time>)
# Needs: Scripts/setup.sh (OpenBLAS, jemalloc, Fashion-MNIST), swift, python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

exercise_setup() {   # exercise_setup NAME [densenet] [bench-memory]
    local name="$1"; shift
    OUT="${OUT:-results/$name-$(date +%Y%m%d-%H%M%S)}"
    mkdir -p "$OUT"
    Scripts/setup.sh
    for product in "$@"; do
        case "$product" in
            densenet) [ -n "${DENSENET:-}" ] && continue ;;
            bench-memory) [ -n "${BENCH_MEMORY:-}" ] && continue ;;
        esac
        echo "$name: building $product (release)" >&2
        swift build -c release --product "$product" >&2
    done
    local bin
    bin="$(swift build -c release --show-bin-path)"
    DENSENET="${DENSENET:-$bin/densenet}"
    BENCH_MEMORY="${BENCH_MEMORY:-$bin/bench-memory}"
    MACHINE="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(nproc) cores), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "$MACHINE" > "$OUT/machine.txt"
    echo "$name: results in $OUT; machine: $MACHINE" >&2
}

# Prints and runs a command, and appends it to $OUT/commands.sh.
run() {
    echo "+ $*" >&2
    printf '%q ' "$@" >> "$OUT/commands.sh"; echo >> "$OUT/commands.sh"
    "$@"
}
