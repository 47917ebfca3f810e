#!/usr/bin/env bash
# Brings everything selfsup needs into this checkout, idempotently:
#   .libtorch/site/torch/{lib,include}   libtorch 2.13.0 from the PyPI torch wheel (no Python install)
#   .libtorch/site/nvidia/cu13/lib       the two small CUDA runtime libraries libtorch_cpu.so links to
#   Fashion-MNIST                        Debian's dataset-fashion-mnist (only with --data), imported
#                                        into the data root by `selfsup data fetch --from`
# Then builds the `selfsup` binary (release) unless --no-build is given.
#
# The PyPI wheel is the CUDA build; on a CPU machine its libtorch_cpu.so still needs libcudart.so.13
# and libcupti.so.13 at load time, so we take those two wheels (13 MB) instead of the ~3 GB of NVIDIA
# wheels the full CUDA stack needs, and leave libtorch_cuda*.so out so that the build links CPU only.
# SELFSUP_CUDA=1 keeps the CUDA libraries and fetches the whole NVIDIA stack (for GPU machines).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

want_data=0; build=1
for a in "$@"; do
  case "$a" in
    --data) want_data=1 ;;
    --no-build) build=0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

torch_version=2.13.0
cuda_toolkit=13.0.3
site=.libtorch/site
cache=.cache/wheels
stamp="$site/.complete-$torch_version${SELFSUP_CUDA:+-cuda}"

py() { command -v python3 || command -v python; }

if [ ! -f "$stamp" ]; then
  echo "setup: fetching libtorch $torch_version from PyPI into $site" >&2
  mkdir -p "$cache"
  pip_dl=("$(py)" -m pip download --quiet --only-binary=:all: --platform manylinux_2_28_x86_64 \
          --platform manylinux_2_25_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
          --python-version 3.11 --implementation cp -d "$cache")
  "${pip_dl[@]}" --no-deps "torch==$torch_version"
  if [ -n "${SELFSUP_CUDA:-}" ]; then
    "${pip_dl[@]}" "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==$cuda_toolkit" \
      nvidia-cudnn-cu13==9.20.0.48 nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.29.7 nvidia-nvshmem-cu13==3.4.5
  else
    "${pip_dl[@]}" "cuda-toolkit[cudart,cupti]==$cuda_toolkit"
  fi
  rm -rf "$site.tmp" && mkdir -p "$site.tmp"
  wheel=$(ls "$cache"/torch-$torch_version-*.whl | head -n 1)
  if [ -n "${SELFSUP_CUDA:-}" ]; then
    unzip -q -o "$wheel" 'torch/lib/*' 'torch/include/*' -d "$site.tmp"
    for w in "$cache"/nvidia_*.whl; do unzip -q -o "$w" 'nvidia/*' -d "$site.tmp"; done
  else
    unzip -q -o "$wheel" 'torch/lib/*' 'torch/include/*' -x 'torch/lib/libtorch_cuda*' \
      'torch/lib/libc10_cuda.so' 'torch/lib/libtorch_nvshmem.so' 'torch/lib/libcaffe2_nvrtc.so' \
      'torch/lib/libtorch_python.so' -d "$site.tmp"
    # libtorch.so only re-exports libtorch_cpu/libtorch_cuda; torch-sys links it by name, so keep it,
    # but the CPU build never loads it (the linker drops it: no symbol is used from it).
    for w in "$cache"/nvidia_cuda_runtime-*.whl "$cache"/nvidia_cuda_cupti-*.whl; do
      unzip -q -o "$w" 'nvidia/cu13/lib/libcudart.so.13' 'nvidia/cu13/lib/libcupti.so.13' -d "$site.tmp" 2>/dev/null \
        || unzip -q -o "$w" 'nvidia/cu13/lib/libcudart.so.13' -d "$site.tmp" 2>/dev/null \
        || unzip -q -o "$w" 'nvidia/cu13/lib/libcupti.so.13' -d "$site.tmp"
    done
  fi
  echo "$torch_version" > "$site.tmp/torch/build-version"
  rm -rf "$site" && mv "$site.tmp" "$site"
  touch "$stamp"
fi

if [ "$want_data" = 1 ] && [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "setup: installing Debian's dataset-fashion-mnist" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get install -y -q dataset-fashion-mnist >/dev/null || {
    $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q dataset-fashion-mnist >/dev/null; }
fi

if [ "$build" = 1 ]; then
  cargo build --release --bin selfsup
fi

# Debian's package rather than a download from the publisher: a package registry is reachable where
# GitHub may not be. Its files are recompressed, so the registry checks the decompressed bytes, and
# the import verifies every sha256 (files already verified are kept: a second run costs seconds).
if [ "$want_data" = 1 ]; then
  [ -x target/release/selfsup ] || cargo build --release --bin selfsup
  ./target/release/selfsup data fetch fashion-mnist --from /usr/share/datasets/fashion-mnist --quiet
fi
