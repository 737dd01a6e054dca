#!/usr/bin/env bash
# Installs what building and testing need, once per machine: the
# wasm32-wasip2 target, and Debian's redis-server and strace for the tests.
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
