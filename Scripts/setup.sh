#!/usr/bin/env bash
# Installs the Debian packages this project needs, when they are missing. Idempotent, and quiet
# when there is nothing to do. Needs root or sudo only when something must be installed.
#   Scripts/setup.sh            build, test and data dependencies (OpenBLAS, jemalloc, zlib, Open MPI,
#                               libpng, libjpeg-turbo, Fashion-MNIST)
#   (--data is accepted for compatibility; the data package is always installed)
set -euo pipefail

packages=(libopenblas-dev libjemalloc-dev zlib1g-dev openmpi-bin libopenmpi-dev libpng-dev libjpeg62-turbo-dev pkg-config
          dataset-fashion-mnist)
for arg in "$@"; do
    case "$arg" in
        --data) ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option '$arg' (use --data or --help)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: missing ${missing[*]}, and this is not a Debian-like system: install them by hand." >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "setup.sh: missing ${missing[*]}; run as root or install sudo." >&2; exit 1
    fi
fi
echo "setup.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
