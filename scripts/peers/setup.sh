#!/usr/bin/env bash
# Installs the peer job queues (requirements.txt) into a private virtual
# environment, .hl/peers-venv in the checkout (git-ignored), and prints its
# python. Reinstalls only when requirements.txt changed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$repo/.hl/peers-venv"
requirements="$repo/scripts/peers/requirements.txt"
stamp="$venv/.requirements"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
if ! cmp -s "$requirements" "$stamp"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    cp "$requirements" "$stamp"
fi
echo "PEERS_PYTHON=$venv/bin/python"
