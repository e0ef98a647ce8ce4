#!/usr/bin/env bash
# The main job on the embedded default (SQLite + local files), no server needed:
# create a store, push the sample guide-board run as release evidence, show it, pull it back,
# and verify the event log. Usage: scripts/quickstart.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-./artifactstore-data}"
cargo build --quiet --release -p artifactstore-cli
as() { ./target/release/artifactstore --data-dir "$DATA_DIR" "$@"; }
set -x
as init
as push examples/guide-board --name guide-board --version 2026.11.23-1 \
   --class release-evidence --label git.commit=3f2a9c1
as show guide-board@2026.11.23-1
as retention explain guide-board@2026.11.23-1
rm -rf "$DATA_DIR/pulled"
as pull guide-board@2026.11.23-1 "$DATA_DIR/pulled"
diff -r examples/guide-board "$DATA_DIR/pulled"
as audit verify
