#!/usr/bin/env bash
# Installs a Debian package unless its command is already there; safe to run again.
#
#   scripts/apt_install.sh PACKAGE COMMAND...   (installed when none of the commands exists)
set -euo pipefail

package="$1"
shift
for command in "$@"; do
    if command -v "$command" >/dev/null 2>&1; then
        echo "$package already installed ($command)"
        exit 0
    fi
done

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "installing $package needs root to run apt-get; rerun as root or install the" \
            "'$package' package yourself" >&2
        exit 1
    fi
else
    SUDO=""
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "$package"
