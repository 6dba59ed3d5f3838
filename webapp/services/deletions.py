"""Deleting what replies are written into: a conversation, a user.

Their replies still pending or being written are stopped first, as Stop does (wherever they
run), so that no provider call goes on writing a reply nobody can see any more.
"""

from __future__ import annotations

from webapp.models import Conversation
from webapp.services import reply_runs, users
from webapp.services.conversations import delete_conversations


def delete_conversation(user_id: int, conversation_id: int) -> None:
    """Delete the user's conversation. By id and owner: stopping commits and waits, and a
    second tab may delete it meanwhile (no error)."""
    owned = (Conversation.id == conversation_id) & (Conversation.user_id == user_id)
    reply_runs.stop_unfinished(owned)
    delete_conversations(owned)


def delete_user(user_id: int) -> int:
    """Delete the user and their conversations; returns how many conversations went.
    Raises LastAdminError, UserGone before stopping anything."""
    users.check_deletable(user_id)
    reply_runs.stop_unfinished(Conversation.user_id == user_id)
    return users.delete_user(user_id)
