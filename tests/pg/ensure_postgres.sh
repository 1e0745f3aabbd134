#!/bin/sh
# Make sure PostgreSQL's server binaries (initdb, pg_ctl) are installed for the tests that run
# the store contract on PostgreSQL (tests/pg/). Idempotent: does nothing when initdb is found
# on PATH or under /usr/lib/postgresql/*/bin. Installs Debian's `postgresql` package without
# creating or starting its default cluster: the tests start a throwaway one of their own.
# Exits 0 either way; without PostgreSQL those tests FAIL (they skip only with
# TIMERD_SKIP_POSTGRES=1), so a machine without it never passes silently.
set -u

found() {
    if command -v initdb >/dev/null 2>&1; then
        echo "ensure_postgres: found $(command -v initdb)"
        return 0
    fi
    for bin in /usr/lib/postgresql/*/bin/initdb; do
        if [ -x "$bin" ]; then
            echo "ensure_postgres: found $bin"
            return 0
        fi
    done
    return 1
}

found && exit 0

if [ "${TIMERD_SKIP_POSTGRES:-}" = "1" ]; then
    echo "ensure_postgres: no PostgreSQL and TIMERD_SKIP_POSTGRES=1; PostgreSQL tests will skip"
    exit 0
fi

# no default cluster: nothing listens on 5432 and no service is left running
no_default_cluster() {
    $SUDO mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" |
        $SUDO tee /etc/postgresql-common/createcluster.d/timerd-tests.conf >/dev/null
}

. "$(dirname "$0")/../apt_install.sh"
if apt_install ensure_postgres postgresql "the PostgreSQL tests fail" no_default_cluster; then
    found || echo "ensure_postgres: installed, but no initdb found"
fi
exit 0
