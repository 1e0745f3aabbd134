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

. "$(dirname "$0")/../apt_install.sh"
if apt_install ensure_chromium chromium "the browser tests skip"; then
    echo "ensure_chromium: installed $(command -v chromium)"
fi
exit 0
