#!/usr/bin/env bash
# Installs Prometheus and promtool from the distribution's package when promtool is missing.
# The monitoring tests check the shipped rules with promtool and scrape with a real Prometheus;
# Debian's package provides both (Prometheus 2.42 on bookworm). Safe to run again.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    echo "prometheus and promtool already installed: $(promtool --version 2>&1 | head -n 1)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install_prometheus.sh needs root to run apt-get; rerun as root or install the" \
            "'prometheus' package yourself" >&2
        exit 1
    fi
else
    SUDO=""
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends prometheus

# The package starts a system service where an init system runs; the tests start their own
# server on a free port, so a running service does no harm, but stop it where we can so it
# does not hold port 9090 or scrape anything on its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl stop prometheus || true
fi

prometheus --version 2>&1 | head -n 1
promtool --version 2>&1 | head -n 1
