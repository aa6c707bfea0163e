#!/usr/bin/env bash
# Creates (once) a Python virtualenv and installs a requirements file into it, again only when
# that file changed (its hash is kept in VENV/requirements.sha256):
#
#   scripts/lib/python-venv.sh VENV REQUIREMENTS
#
#   PYTHON=python3.12 ...   the interpreter to create the virtualenv with (python3)
set -euo pipefail
venv=$1
requirements=$2
stamp="$venv/requirements.sha256"

if ! "$venv/bin/python" -c '' 2>/dev/null; then
    echo "== creating $venv" >&2
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi

wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    echo "== installing $requirements into $venv" >&2
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$requirements"
    echo "$wanted" >"$stamp"
fi
