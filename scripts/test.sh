#!/usr/bin/env bash
# The test command: builds the guests, uses the PostgreSQL in DATABASE_URL or
# starts the private cluster (scripts/pg.sh) when it is unset, then runs the
# whole suite. Arguments go to swift test:  scripts/test.sh --filter SandboxTests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

guests/build.sh
if [ -z "${DATABASE_URL:-}" ]; then
    export "$(scripts/pg.sh start)"
fi
# A database is there, so a test that would skip for want of one must fail.
export HL_REQUIRE_DB="${HL_REQUIRE_DB:-1}"

swift test "$@"
