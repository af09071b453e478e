#!/usr/bin/env bash
# Installs headless Chromium from the distribution's package when it is missing. The eval
# report tests open the HTML report in a real browser and check that every chart is drawn.
set -euo pipefail
"$(dirname "${BASH_SOURCE[0]}")/apt_install.sh" chromium chromium chromium-browser
