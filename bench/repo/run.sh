#!/usr/bin/env bash
# Builds Cairn for benchmarking and runs bench-repo against restic, rustic and borg.
# Usage: bench/repo/run.sh [--size 2GiB] [--reps 3] [--targets local,s3] [--install] ...
# Needs root for dropping the page cache between steps (restores are measured cold).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${CARGO_TARGET_DIR:=target}"
export CARGO_TARGET_DIR
cargo build --release -p cairn-cli -p cairn-bench
# SeaweedFS (`weed`) for the S3 target comes from ./test.sh's venv.
export PATH="$PWD/.tools/venv/bin:/work/.bench-tools/bin:$PATH"
exec "$CARGO_TARGET_DIR/release/bench-repo" run "$@"
