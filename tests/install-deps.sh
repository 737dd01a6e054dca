#!/usr/bin/env bash
# Installs what building and testing need, once per machine: the
# wasm32-wasip2 target, Debian's redis-server and strace for the tests, and
# Python virtual environments for hermes-server (the parity tests) and the
# Event Hubs SDK, and Azurite (the blob store the SDK keeps checkpoints in).
set -euo pipefail

rustup target add wasm32-wasip2

# redis-server for the Redis tests; strace for the durability tests, which
# check the system calls the binary makes.
missing=""
command -v redis-server >/dev/null || missing="$missing redis-server"
command -v strace >/dev/null || missing="$missing strace"
if [ -n "$missing" ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

# Python virtual environments under the target directory, each made once:
# the real hermes-server's requirements, for the tests that compare
# hermes-wasm's server with it (they run it when they find hermes' source:
# $HERMES_SOURCE); the Event Hubs SDK, for the endpoint's tests.
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
python_env() {
    local venv="$target/python/$1" module="$2"
    shift 2
    if "$venv/bin/python" -c "import $module" 2>/dev/null; then
        return
    fi
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian's python3 keeps venv in a package of its own.
        sudo=""
        if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q "$@"
}
python_env hermes "cerberus, jinja2, yaml" Cerberus==1.3.8 Jinja2==3.1.6 PyYAML==6.0.3
python_env event-hubs azure.eventhub.extensions.checkpointstoreblobaio \
    azure-eventhub==5.15.1 azure-eventhub-checkpointstoreblob-aio==1.2.0

# Azurite, the Azure Storage emulator, under the target directory: the
# Event Hubs tests start its blob service for the SDK's checkpoint store.
azurite="$target/node/node_modules/.bin/azurite-blob"
if [ ! -x "$azurite" ]; then
    if ! command -v npm >/dev/null; then
        sudo=""
        if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm >/dev/null
    fi
    mkdir -p "$target/node"
    npm install --prefix "$target/node" --no-audit --no-fund --silent azurite@3.37.0
fi
