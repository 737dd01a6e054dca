# The everyday commands. CI runs `just ci` (through .ci/run).

# List the recipes.
default:
    @just --list

# Install what building and testing need: the wasm32-wasip2 target,
# redis-server and strace for the tests (from Debian's packages), and the
# Python environment the real hermes-server runs in for the parity tests.
setup:
    tests/install-deps.sh

# Build the hermes-wasm binary (the built-in file-log plugin included).
build: setup
    cargo build --release -p hermes-wasm

# Run every test: the guests are built from source by the tests' build script.
test: setup
    cargo test --workspace

# Formatting and lints, as CI checks them.
check:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# The main job: a datasource's changes flow through the file-log bus to a client.
quickstart:
    ./examples/quickstart.sh

# Describe a plugin (the built-in file-log bus by default).
inspect plugin="":
    cargo run --quiet -p hermes-wasm -- inspect {{plugin}}

# Build a guest for wasm32-wasip2, e.g. `just guest file-log`.
guest name: setup
    cargo build --profile guest --target wasm32-wasip2 -p {{name}}

# Everything CI runs.
ci: check test quickstart
    ./target/release/hermes-wasm bench --quick

# Every figure beside its limit, in one run (BENCHMARKS.md), e.g.
# `just bench -n 100000 --hermes ../hermes`.
bench *args: setup
    cargo build --release -p hermes-wasm
    ./target/release/hermes-wasm bench {{args}}

# The criterion benchmarks of the pieces: the codec, file-log through the
# host, the client and the server.
criterion: setup
    cargo bench -p hermes-event --bench codec
    cargo bench -p tests --bench file_log
    cargo bench -p tests --bench client
    cargo bench -p tests --bench server

# The kill -9 harness at full size (RELIABILITY.md): each scenario kills the
# binary `kills` times at random points and checks what survives. Prints one
# table row per scenario and the seed that replays it
# (`HERMES_TORTURE_SEED=...`). A release build: the checks after each kill
# read the whole bus back.
torture kills="1000": setup
    HERMES_TORTURE_KILLS={{kills}} cargo test --release -p hermes-wasm --test crash -- --nocapture --test-threads 2 survives_kill_9

# The fuzz targets at length (RELIABILITY.md): the codec, file-log's record
# reader, the offset parser and the configurations, `cases` executions each.
fuzz cases="10000000": setup
    HERMES_FUZZ_CASES={{cases}} cargo test --release -p tests --test fuzz
