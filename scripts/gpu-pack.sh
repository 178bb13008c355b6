#!/usr/bin/env bash
# Packs what a GPU run needs into pieces that fit the device tool's 64 MiB per call
# (/work/.library/device/README.md): the CUDA binary xz-compressed in dist/, and, when asked,
# model files split into 48 MiB chunks under .gpu/parts/ (both ignored by git). Chunks are sent
# over several calls to one warm machine (carry .gpu/parts/NAME.part-aa in one call,
# .part-ab in the next: ignored paths already there are kept); scripts/gpu-bench.sh joins them.
#
#   scripts/gpu-pack.sh [MODEL_FILE...]   e.g. ~/.cache/mentor/models/SmolLM2-135M-Instruct.Q4_1.gguf
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x dist/mentor-cuda ] || { echo "no dist/mentor-cuda: run scripts/build-cuda.sh first" >&2; exit 1; }
xz -T0 -6 -kf dist/mentor-cuda
echo "dist/mentor-cuda.xz: $(du -m dist/mentor-cuda.xz | cut -f1) MiB"
mkdir -p .gpu/parts
for f in "$@"; do
  name="$(basename "$f")"
  rm -f ".gpu/parts/$name".part-*
  split -b 48M -a 2 "$f" ".gpu/parts/$name.part-"
  ls -1 ".gpu/parts/$name".part-* | while read -r p; do echo "$p: $(du -m "$p" | cut -f1) MiB"; done
done
