#!/bin/sh
# Installs the Debian packages listed in $1 (one per line, # comments) that
# are not installed yet. Needs root (or sudo) only when something is missing.
set -eu
list=${1:-deps/debian.txt}
missing=""
for p in $(grep -v '^[[:space:]]*#' "$list" | awk 'NF {print $1}'); do
    # a tool already on PATH counts (npm comes inside NodeSource's nodejs)
    if command -v "$p" >/dev/null 2>&1; then continue; fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "deps: all packages from $list are installed"
    exit 0
fi
echo "deps: installing$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
