"""Over budget in Chromium, on a phone (390×844) and a desktop (1280×800): typing past the
limit disables Send with the reason beside it (Enter does not send either), shortening the
message enables it again; a long history is fitted (the meter says how many turns are left
out) and the message goes; a send the meter had not caught up with is refused with the
text kept."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support.app import LiveServer
from tests.support.chat_http import mock_model, mock_provider
from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation, LLMModel

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SIZES = pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
WINDOW = 120
RESERVE = 20
TOO_LONG = "This message alone is longer than the window allows. " * 20
FITS = "A short question."

PAGE_FITS = """() => {
  const root = document.scrollingElement;
  return root.scrollWidth <= root.clientWidth && root.scrollHeight <= root.clientHeight;
}"""


def small_model(live_server: LiveServer) -> LLMModel:
    model = mock_model(mock_provider(live_server), context_window_tokens=WINDOW)
    [default] = model.llm_presets
    default.llm_options_overrides = {"temperature": 0, "max_tokens": RESERVE}
    _db.session.commit()
    return model


def long_conversation(user_id: int, model: LLMModel, turns: int = 10) -> int:
    conversation = Conversation(user_id=user_id, title="A long talk", llm_model_id=model.id)
    _db.session.add(conversation)
    _db.session.flush()
    for number in range(turns):
        _db.session.add_all(
            [
                ChatMessage(conversation_id=conversation.id, role="user", content=f"Q{number}"),
                ChatMessage(
                    conversation_id=conversation.id,
                    role="assistant",
                    content=f"Answer {number}: " + "words " * 12,
                    llm_model_id=model.id,
                    model_name=model.name,
                ),
            ]
        )
    _db.session.commit()
    return conversation.id


def messages_stored() -> int:
    _db.session.expire_all()
    return _db.session.scalar(_db.select(_db.func.count()).select_from(ChatMessage))


def assert_in_viewport(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (selector, box)
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (selector, box)


@SIZES
def test_typing_past_the_limit_disables_send_with_the_reason_and_shortening_enables_it(
    live_server: LiveServer, member_page: Page, size: dict[str, int]
) -> None:
    model = small_model(live_server)
    page = member_page
    page.set_viewport_size(size)
    page.goto(f"{live_server.url}/")
    box = page.get_by_role("textbox", name="Message")
    send = page.get_by_role("button", name="Send")

    box.fill(TOO_LONG)

    reason = page.locator("#budget-reason")
    expect(reason).to_contain_text(f"Too long for {model.name}: ≈ ")
    expect(reason).to_contain_text(f"context window {WINDOW} − {RESERVE} reserved for the reply")
    expect(reason).to_contain_text("shorten the message or pick a model with a larger window")
    expect(send).to_be_disabled()
    expect(send).to_have_attribute("aria-describedby", "budget-reason")
    expect(reason).to_be_visible()
    assert_in_viewport(page, "#budget-reason")
    assert_in_viewport(page, "#composer .send")
    assert page.evaluate(PAGE_FITS)

    # Neither Enter nor Ctrl+Enter sends it.
    box.press("Enter")
    box.press("Control+Enter")
    send.click(force=True)  # a disabled button does nothing, even when clicked
    expect(box).to_have_value(TOO_LONG)
    expect(page.locator("#transcript .message")).to_have_count(0)
    assert messages_stored() == 0

    box.fill(FITS)

    expect(send).to_be_enabled()
    expect(send).not_to_have_attribute("aria-describedby", "budget-reason")
    expect(page.locator("#budget-reason")).to_have_count(0)
    box.press("Enter")
    expect(page.locator("#transcript .message.user .user-text")).to_have_text(FITS)
    reply = page.locator("#transcript .message.assistant").last
    expect(reply.locator(".markdown")).to_contain_text(FITS)


@SIZES
def test_a_long_history_is_fitted_and_the_message_goes(
    live_server: LiveServer, member_page: Page, member: Any, size: dict[str, int]
) -> None:
    model = small_model(live_server)
    conversation_id = long_conversation(member.id, model)
    page = member_page
    page.set_viewport_size(size)
    page.goto(f"{live_server.url}/c/{conversation_id}")
    box = page.get_by_role("textbox", name="Message")

    box.fill(FITS)

    meter = page.locator("#budget")
    expect(meter).to_contain_text("earlier turns left out to fit")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    box.press("Enter")
    reply = page.locator("#transcript .message.assistant").last
    expect(reply.locator(".markdown")).to_contain_text(FITS)
    expect(reply.locator(".badge.err")).to_have_count(0)
    assert page.evaluate(PAGE_FITS)


def test_turning_fitting_off_disables_send_and_turning_it_on_enables_it(
    live_server: LiveServer, member_page: Page, member: Any
) -> None:
    model = small_model(live_server)
    conversation_id = long_conversation(member.id, model)
    page = member_page
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/c/{conversation_id}")
    page.get_by_role("textbox", name="Message").fill(FITS)
    send = page.get_by_role("button", name="Send")
    expect(page.locator("#budget")).to_contain_text("left out to fit")

    setting = page.get_by_role("checkbox", name="Fit long history automatically")
    expect(setting).to_be_checked()
    setting.uncheck()

    expect(page.locator("#budget-reason")).to_contain_text(
        "turn on “Fit long history automatically”"
    )
    expect(send).to_be_disabled()
    _db.session.expire_all()
    assert _db.session.get(Conversation, conversation_id).fit_history is False

    page.get_by_role("checkbox", name="Fit long history automatically").check()

    expect(page.locator("#budget")).to_contain_text("left out to fit")
    expect(send).to_be_enabled()


def test_a_send_the_meter_had_not_caught_up_with_is_refused_with_the_text_kept(
    live_server: LiveServer, member_page: Page
) -> None:
    model = small_model(live_server)
    page = member_page
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/")
    box = page.get_by_role("textbox", name="Message")
    box.fill(FITS)
    expect(page.locator("#budget")).to_contain_text(f"/ {WINDOW - RESERVE} tokens")
    # The model's window shrinks after the meter counted (an admin edits it).
    model.context_window_tokens = RESERVE + 2
    _db.session.commit()

    box.press("Enter")

    error = page.locator("#content-error")
    expect(error).to_contain_text(f"Too long for {model.name}: ≈ ")
    expect(error).to_contain_text(
        f"(context window {RESERVE + 2} − {RESERVE} reserved for the reply)"
    )
    expect(page.get_by_role("textbox", name="Message")).to_have_value(FITS)
    expect(page.get_by_role("textbox", name="Message")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    assert messages_stored() == 0
