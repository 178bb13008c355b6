#!/usr/bin/env bash
# Builds mentor with CUDA on a machine with no GPU and no CUDA install, and leaves one binary,
# dist/mentor-cuda, to carry to a GPU machine (DESIGN.md §9).
#
#  1. nvcc 13.0.x from PyPI into a venv (pinned: the GPU machines' driver is CUDA 13.0 and rejects
#     newer PTX). candle-kernels compiles its kernels with it for CUDA_COMPUTE_CAP (default 90:
#     H100 / H200).
#  2. candle-core links cudarc with `dynamic-linking`, which needs libcuda at link time. A copy of
#     the registry's candle-core under target/cuda-patch, with cudarc switched to
#     `dynamic-loading`, is patched in for this build only, so the binary dlopens the CUDA
#     libraries at run time. Cargo.lock is restored afterwards.
#  3. `cargo build --release --features cuda` into target/cuda (the CPU build is untouched).
#
# On the GPU machine, put the CUDA libraries on the library path (PyTorch's wheels bring them):
#   export LD_LIBRARY_PATH=$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "lib"))'):$LD_LIBRARY_PATH
#   dist/mentor-cuda --device cuda --dtype bf16 bench parity --model benches/configs/smollm2-135m.json
# scripts/gpu-bench.sh does this and runs every GPU measurement.
#
# Usage: scripts/build-cuda.sh   (CUDA_COMPUTE_CAP=80 for an A100). Takes about 15 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
home="${MENTOR_HOME:-$HOME/.cache/mentor}"
venv="$home/cuda-venv"
pins=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
      nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85)

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show nvidia-cuda-nvcc 2>/dev/null | grep -q '^Version: 13.0.88'; then
  echo "installing nvcc 13.0 from PyPI into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "${pins[@]}"
fi
cuda_home="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
[ -x "$cuda_home/bin/nvcc" ] || { echo "no nvcc under $cuda_home" >&2; exit 1; }
# the wheels ship libcudart.so.13 without the unversioned name the linker looks for
[ -e "$cuda_home/lib/libcudart.so" ] || ln -s libcudart.so.13 "$cuda_home/lib/libcudart.so"
export CUDA_HOME="$cuda_home" CUDA_PATH="$cuda_home"
export PATH="$cuda_home/bin:$cuda_home/nvvm/bin:$PATH"
export LD_LIBRARY_PATH="$cuda_home/lib:${LD_LIBRARY_PATH:-}"
# candle-kernels links libcudart (its MoE kernels) without saying where: the linker's search path
export LIBRARY_PATH="$cuda_home/lib:${LIBRARY_PATH:-}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" CUDARC_CUDA_VERSION=13000
nvcc --version | tail -2 >&2

# candle-core with cudarc loaded at run time
cargo fetch --quiet
src="$(cargo metadata --format-version 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "candle-core").rsplit("/", 1)[0])')"
patched="$root/target/cuda-patch/candle-core"
rm -rf "$patched"; mkdir -p "$(dirname "$patched")"; cp -r "$src" "$patched"
grep -q '"dynamic-linking",' "$patched/Cargo.toml" || { echo "$src: cudarc's dynamic-linking feature not found; candle changed?" >&2; exit 1; }
sed -i 's/"dynamic-linking",/"dynamic-loading",/' "$patched/Cargo.toml"

cp Cargo.lock target/cuda-patch/Cargo.lock.orig
trap 'cp target/cuda-patch/Cargo.lock.orig Cargo.lock' EXIT
CARGO_TARGET_DIR="$root/target/cuda" cargo build --release --bin mentor --features mentor/cuda \
  --config "patch.crates-io.candle-core.path=\"$patched\""

mkdir -p dist
cp target/cuda/release/mentor dist/mentor-cuda
strip dist/mentor-cuda 2>/dev/null || true
size=$(du -m dist/mentor-cuda | cut -f1)
echo "dist/mentor-cuda: ${size} MiB, kernels for sm_${CUDA_COMPUTE_CAP}" >&2
# what it needs at run time: libcudart.so.13 (candle-kernels links it); libcuda, cublas, curand
# and nvrtc are dlopened, so the binary starts where they are missing and says so on --device cuda
if ldd dist/mentor-cuda | grep -q 'libcuda\.so'; then
  echo "dist/mentor-cuda links libcuda directly; the dynamic-loading patch did not apply" >&2
  exit 1
fi
echo "$root/dist/mentor-cuda"
