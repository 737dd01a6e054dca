#!/usr/bin/env bash
# The main job on the built-in file-log bus: a SQLite datasource of 12 groups
# and 300 users; hermes-wasm server sends its initsync, hermes-wasm client
# applies it to a JSON-lines file; then a change in the datasource flows
# through as modified and removed events.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release --quiet -p hermes-wasm
bin=$PWD/target/release/hermes-wasm

# Runs SQL on a database file with whatever SQLite tool the machine has.
sql() {
    if command -v sqlite3 >/dev/null; then
        printf '%s\n' "$2" | sqlite3 -bail "$1"
    elif command -v python3 >/dev/null; then
        python3 -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.executescript(sys.argv[2]); db.commit()' "$1" "$2"
    else
        echo "quickstart: needs sqlite3 or python3 to create the example datasource" >&2
        exit 1
    fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for config in server.yml client.yml; do
    sed "s|@WORK@|$work|g" "examples/$config" >"$work/$config"
done
sql "$work/directory.sqlite" "$(cat examples/datasource.sql)"
# The bus's directory: the one place the plugin is granted.
mkdir "$work/bus"
cd "$work"

echo "== the datasource: 12 groups and 300 users (examples/datasource.sql)"
echo
echo "== hermes-wasm server --once: the first poll sends an initsync sequence"
"$bin" -q server --config server.yml --once
echo
echo "== hermes-wasm client --once: applies it to applied.jsonl"
"$bin" -q client --config client.yml --once
echo "applied.jsonl holds $(wc -l <applied.jsonl) events; the first user:"
grep -m1 '"objtype":"SRVUsers"' applied.jsonl
echo
echo "== a change in the datasource: user 3 is renamed, group 12 loses its users and goes"
sql directory.sqlite "UPDATE users SET last = 'Hopper' WHERE uid = 3;
  UPDATE users SET gid = 1 WHERE gid = 12; DELETE FROM groups WHERE gid = 12;"
echo
echo "== hermes-wasm server --once: the next poll sends the differences"
"$bin" -q server --config server.yml --once
echo
echo "== hermes-wasm client --once: applies them; user 3's event:"
"$bin" -q client --config client.yml --once
grep '"objpkey":3,' applied.jsonl | tail -n 1
echo
echo "== hermes-wasm status --config client.yml"
"$bin" -q status --config client.yml
