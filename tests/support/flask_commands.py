"""Run several `flask --app wsgi` commands in one process, as the `flask` command would.

`python -m tests.support.flask_commands '<JSON list of argument lists>'` prints a JSON list of
{"args", "exit_code", "stdout", "stderr"}, stopping after the first command that fails.
Importing the app takes seconds of CPU; a cluster's set-up runs several commands.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from click.testing import CliRunner
from flask.cli import FlaskGroup


def run(commands: list[list[str]]) -> list[dict[str, Any]]:
    from wsgi import app

    # FlaskGroup loads the plugin commands (`db` from Flask-Migrate) like the `flask` command.
    cli = FlaskGroup(create_app=lambda: app)
    outcomes = []
    for args in commands:
        result = CliRunner().invoke(cli, args)
        outcomes.append(
            {
                "args": args,
                "exit_code": result.exit_code,
                "stdout": result.stdout,
                "stderr": result.stderr
                + ("" if result.exception is None else repr(result.exception)),
            }
        )
        if result.exit_code != 0:
            break
    return outcomes


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
