#!/usr/bin/env bash
# The main job on the built-in file-log bus: build hermes-wasm, send the
# events of examples/events.jsonl through the file-log plugin, read them back.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release --quiet -p hermes-wasm
bin=target/release/hermes-wasm

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
settings="{\"path\": \"$work/bus\"}"

echo "== the plugin"
"$bin" inspect | head -n 5
echo
echo "== produce: examples/events.jsonl -> file-log bus in $work/bus"
"$bin" produce --dir "$work" --settings "$settings" --input examples/events.jsonl
echo
echo "== consume: every event, with its offset and timestamp"
"$bin" consume --dir "$work" --settings "$settings" --timeout-ms 500
echo
echo "== consume --category base --after 3: resume after offset 3, base events only"
"$bin" consume --dir "$work" --settings "$settings" --timeout-ms 500 --category base --after 3
