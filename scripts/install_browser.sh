#!/usr/bin/env bash
# Installs headless Chromium from the distribution's package when it is missing. The eval
# report tests open the HTML report in a real browser and check that every chart is drawn.
# Safe to run again.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install_browser.sh needs root to run apt-get; rerun as root or install the" \
            "'chromium' package yourself" >&2
        exit 1
    fi
else
    SUDO=""
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
chromium --version
