#!/usr/bin/env bash
# The test command: builds the guests, uses the PostgreSQL in DATABASE_URL or
# starts the private cluster (scripts/pg.sh) when it is unset, then runs the
# whole suite. Arguments go to swift test:  scripts/test.sh --filter SandboxTests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

guests/build.sh
# The dashboard's browser tests need Debian's chromium; install it where we can.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2; } \
        || echo "test.sh: could not install chromium; the browser tests will skip (or fail with HL_REQUIRE_BROWSER=1)" >&2
fi
if [ -z "${DATABASE_URL:-}" ]; then
    export "$(scripts/pg.sh start)"
fi
# A database is there, so a test that would skip for want of one must fail.
export HL_REQUIRE_DB="${HL_REQUIRE_DB:-1}"

swift test "$@"
