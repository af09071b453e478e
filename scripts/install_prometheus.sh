#!/usr/bin/env bash
# Installs Prometheus and promtool from the distribution's package when promtool is missing.
# The monitoring tests check the shipped rules with promtool and scrape with a real Prometheus;
# Debian's package provides both (Prometheus 2.42 on bookworm). Safe to run again.
set -euo pipefail

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    # The package brings both.
    "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh" prometheus
fi

# The package starts a system service where an init system runs; the tests start their own
# server on a free port, so a running service does no harm, but stop it where we can so it
# does not hold port 9090 or scrape anything on its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then systemctl stop prometheus || true
    else sudo systemctl stop prometheus || true; fi
fi

prometheus --version 2>&1 | head -n 1
promtool --version 2>&1 | head -n 1
