#!/usr/bin/env bash
# Installs Intel oneMKL from PyPI (the `mkl` wheel, ~220 MB) into a venv and prints the path of
# its `libmkl_rt` last. mentor loads it at run time when `MENTOR_MKL` names that file: the CPU
# training step's large products then go through MKL's sequential sgemm (the library PyTorch
# uses) instead of the gemm crate. Without it nothing changes.
# Usage: export MENTOR_MKL="$(scripts/setup-mkl.sh | tail -1)"
set -euo pipefail
home="${MENTOR_HOME:-$HOME/.cache/mentor}"
venv="$home/mkl-venv"
find_lib() { find "$venv/lib" -name 'libmkl_rt.so*' -type f 2>/dev/null | sort | head -1; }
if [ -z "$(find_lib)" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "mkl==2026.2.*"
fi
lib="$(find_lib)"
[ -n "$lib" ] || { echo "setup-mkl: no libmkl_rt.so in $venv after installing mkl" >&2; exit 1; }
echo "$lib"
