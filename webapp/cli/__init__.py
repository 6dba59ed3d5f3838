"""`flask` commands: thin wrappers over services and seeds, one module per group."""

from __future__ import annotations

from flask import Flask

from webapp.cli.apikeys import apikeys_group
from webapp.cli.chat import chat_command
from webapp.cli.config import config_group
from webapp.cli.models import models_group
from webapp.cli.providers import providers_group
from webapp.cli.setup import keys_group, seed_command, up_command
from webapp.cli.usage import usage_group
from webapp.cli.users import users_group


def register(app: Flask) -> None:
    commands = (
        seed_command,
        keys_group,
        up_command,
        chat_command,
        models_group,
        providers_group,
        users_group,
        apikeys_group,
        config_group,
        usage_group,
    )
    for command in commands:
        app.cli.add_command(command)
