#!/usr/bin/env bash
# Installs what building and testing need, once per machine: the
# wasm32-wasip2 target, and redis-server (Debian's package) for the Redis tests.
set -euo pipefail

rustup target add wasm32-wasip2

if ! command -v redis-server >/dev/null; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi
