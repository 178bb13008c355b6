#!/usr/bin/env bash
# Long runs of the parser property tests (crates/mentor-core/tests/properties.rs, the dataset
# readers in crates/mentor-data/tests/properties.rs and the
# mentor-methods ones): every parser of model and user text over CASES arbitrary and
# model-like inputs each (default 1,000,000), in release mode. A failure prints the minimal
# input proptest shrank it to; keep it as a case in the test file.
#   scripts/fuzz.sh            # 10^6 cases a property
#   CASES=20000 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${CASES:-1000000}"
echo "proptest: $PROPTEST_CASES cases a property" >&2
cargo test --release -p mentor-core --test properties
cargo test --release -p mentor-methods --lib properties
cargo test --release -p mentor-data --test properties
cargo test --release -p mentor-model --test properties
cargo test --release -p mentor-serve --test properties
