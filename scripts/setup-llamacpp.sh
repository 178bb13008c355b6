#!/usr/bin/env bash
# Installs llama-cpp-python (llama.cpp's maintained Python binding, built from its PyPI sdist)
# into the reference venv, for the embedded-teacher benchmark (benches/teacher_llamacpp.py).
# llama.cpp built natively on this machine crashes in its AMX weight-repacking path
# (DESIGN.md "Assets"), so AMX is compiled out; AVX2/AVX-512 stay on. About 10 minutes on 2 cores.
# Usage: scripts/setup-llamacpp.sh   (prints the venv's python path last)
set -euo pipefail
py="$(dirname "$0")/setup-torch.sh"
python="$("$py" | tail -1)"
if ! "$python" -c 'import llama_cpp' 2>/dev/null; then
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$(dirname "$python")/pip" install --quiet "llama-cpp-python==0.3.36"
fi
echo "$python"
