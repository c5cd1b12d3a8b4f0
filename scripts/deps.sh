#!/bin/sh
# Installs the Debian packages pinfer's build and tests need (Debian 12), if any is missing.
set -e
PKGS="gcc make libc6-dev clang libclang-rt-14-dev liburing-dev libpcre2-dev"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
