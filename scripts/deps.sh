#!/bin/sh
# Installs the Debian packages pinfer's build and tests need (Debian 12), if any is missing:
# the compilers and libraries (liburing, PCRE2; libmicrohttpd and jansson for pinfer serve),
# curl for the server tests, nginx for the test of pinfer serve behind nginx (tests/test_serve_nginx.c
# runs its own nginx as the user on a loopback port; the system service Debian's package may start
# on port 80 is not used, and harmless), and Node.js with npm for the test that drives pinfer serve with
# OpenAI's npm package (only when no node/npm is installed already, from Debian or elsewhere).
set -e
PKGS="gcc make libc6-dev clang libclang-rt-14-dev liburing-dev libpcre2-dev libmicrohttpd-dev libjansson-dev curl nginx"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
