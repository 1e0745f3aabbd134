# Sourced by tests/browser/ensure_chromium.sh and tests/pg/ensure_postgres.sh: install one Debian
# package for the tests, as root or with password-less sudo, or say in one line why not.
# apt_install TAG PACKAGE CONSEQUENCE [PREPARE]: TAG prefixes every line; CONSEQUENCE says what
# the tests do without the package; PREPARE, if given, is run (with $SUDO set) before installing.
# Returns 0 when the package installed, 1 otherwise; never stops the caller.

apt_install() {
    tag=$1 package=$2 consequence=$3 prepare=${4:-}
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$tag: no apt-get here; install $package yourself or $consequence"
        return 1
    fi
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        else
            echo "$tag: not root and no password-less sudo; $consequence"
            return 1
        fi
    fi
    echo "$tag: installing Debian's $package package"
    export DEBIAN_FRONTEND=noninteractive
    [ -n "$prepare" ] && "$prepare"
    if $SUDO apt-get update -q >/dev/null && \
        $SUDO apt-get install -y -q --no-install-recommends "$package" >/dev/null; then
        return 0
    fi
    echo "$tag: apt-get could not install $package; $consequence"
    return 1
}
