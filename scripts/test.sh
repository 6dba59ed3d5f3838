#!/usr/bin/env bash
# Install ModelDesk with its test extras into .venv and run the whole test suite.
# Browser tests drive the system Chromium (Debian package "chromium"); it is installed
# here when missing and we may (root), otherwise we stop and say how to install it.
# Arguments go to pytest. TEST_DATABASE_URL=postgresql://… runs the suite on PostgreSQL.
# The tests run in parallel, one pytest-xdist worker per core (at most 4), each on a database
# of its own; the modules that start gunicorn run on one worker (xdist_group "gunicorn").
# `-n 0` runs them in one process.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser tests…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "The browser tests need Chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

set +e
.venv/bin/python -m pytest --numprocesses=auto --maxprocesses=4 --dist=loadgroup "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: that is a failure here." >&2
  exit 1
fi
exit "$status"
