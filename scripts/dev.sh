#!/usr/bin/env bash
# Install ModelDesk into .venv, apply migrations, load seeds, and serve it on
# http://127.0.0.1:5000 with the mock provider answering (no API key needed).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/flask --app wsgi up "$@"
