#!/bin/sh
# Make sure Debian's `chromium` is installed for the browser tests (tests/browser/).
# Idempotent: does nothing when a chromium binary is already on PATH. Needs root (or sudo)
# and the Debian archive; exits 0 either way, because the tests skip with a clear reason
# when no browser is found. Set TIMERD_SKIP_CHROMIUM_INSTALL=1 to never install.
set -u

for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "ensure_chromium: found $(command -v "$name")"
        exit 0
    fi
done

if [ "${TIMERD_SKIP_CHROMIUM_INSTALL:-}" = "1" ]; then
    echo "ensure_chromium: no chromium and TIMERD_SKIP_CHROMIUM_INSTALL=1; browser tests will skip"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no apt-get here; install chromium yourself or the browser tests skip"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "ensure_chromium: not root and no password-less sudo; browser tests will skip"
        exit 0
    fi
fi

echo "ensure_chromium: installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -q >/dev/null && \
    $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; then
    echo "ensure_chromium: installed $(command -v chromium)"
else
    echo "ensure_chromium: apt-get could not install chromium; browser tests will skip"
fi
exit 0
