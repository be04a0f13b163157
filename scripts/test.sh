#!/usr/bin/env bash
# The test command. Uses the PostgreSQL in DATABASE_URL, or starts the
# private cluster (scripts/pg.sh) when it is unset; then runs swift test.
# Arguments go to swift test:  scripts/test.sh --filter JobQueueTests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${DATABASE_URL:-}" ]; then
    export "$(scripts/pg.sh start)"
fi
# A database is there, so a test that would skip for want of one must fail.
export HL_REQUIRE_DB="${HL_REQUIRE_DB:-1}"

swift test "$@"
