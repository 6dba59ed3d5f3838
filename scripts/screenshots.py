"""Save PNG screenshots of ModelDesk's main pages to docs/screenshots/.

Serves the app on a loopback port (a fresh SQLite database, migrations, seeds, an admin),
drives Debian's Chromium with Playwright and captures the providers, models, presets and
chat pages — the chat mid-stream, finished, with a regenerated alternative, on a phone, and
over its token budget.

    python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seeds import seed_llm  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import LLMModel  # noqa: E402
from webapp.services.users import create_user  # noqa: E402

EMAIL, PASSWORD = "admin@example.com", "screenshots-password"
PROMPT = (
    "Explain how server-sent events stream a chat reply token by token from the provider, "
    "through ModelDesk, to the browser, and what happens when the reader presses Stop or "
    "closes the tab half-way through a long answer."
)


def serve() -> tuple[str, int, Flask]:
    folder = tempfile.mkdtemp(prefix="modeldesk-shots-")
    app = create_app(
        {
            "MODELDESK_ENV": "development",
            "INSTANCE_PATH": folder,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/shots.sqlite3",
            "SECRET_KEY": "screenshots",
            "MODELDESK_ENCRYPTION_KEY": "screenshots",
            "MOCK_LLM_STREAM_DELAY": 0.25,
        }
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["MOCK_LLM_BASE_URL"] = url
    with app.app_context():
        upgrade()
        seed_llm(db.session, app.config)
        create_user(EMAIL, PASSWORD, role="admin")
        mock_id = db.session.scalars(select(LLMModel.id).where(LLMModel.key == "mock")).one()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return url, mock_id, app


def shoot(page: Page, out: Path, name: str) -> None:
    page.screenshot(path=str(out / f"{name}.png"), full_page=False)
    print(f"saved {out / name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    url, mock_id, app = serve()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/login")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/**")
        for name, path in [
            ("providers", "/providers/"),
            ("models", "/models/"),
            ("presets", f"/models/{mock_id}/presets/"),
            ("provider-edit", "/providers/1/edit"),
        ]:
            page.goto(url + path)
            shoot(page, out, name)
        page.goto(f"{url}/")
        page.get_by_label("Model", exact=True).select_option(label="Mock")
        page.get_by_role("textbox", name="Message").fill(PROMPT)
        page.get_by_role("button", name="Send").click()
        page.locator("#transcript .message.assistant").last.wait_for()
        page.wait_for_timeout(1200)
        shoot(page, out, "chat-streaming")
        page.locator("#transcript .message.assistant .stat").first.wait_for(timeout=30_000)
        shoot(page, out, "chat")
        page.get_by_role("button", name="Regenerate", exact=True).click()
        page.get_by_text("2/2").wait_for(timeout=30_000)
        page.locator("#transcript .message.assistant .stat").last.wait_for(timeout=30_000)
        shoot(page, out, "chat-alternatives")
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.context.add_cookies(page.context.cookies())
        phone.goto(page.url)
        shoot(phone, out, "chat-phone")
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.context.add_cookies(page.context.cookies())
        over_budget(
            app, mock_id, url, out, {"chat-over-budget": page, "chat-over-budget-phone": phone}
        )
        browser.close()


def over_budget(app: Flask, mock_id: int, url: str, out: Path, pages: dict[str, Page]) -> None:
    """A new chat whose draft is too long for the model's window: Send disabled, the reason
    beside it."""
    with app.app_context():
        model = db.session.get(LLMModel, mock_id)
        model.context_window_tokens = 120
        db.session.commit()
    desktop = next(iter(pages.values()))
    desktop.goto(f"{url}/")
    desktop.get_by_role("button", name="New chat").click()
    desktop.wait_for_url(f"{url}/c/**")
    for name, page in pages.items():
        page.goto(desktop.url)
        page.get_by_role("textbox", name="Message").fill(PROMPT * 3)
        page.locator("#budget-reason").wait_for()
        shoot(page, out, name)


if __name__ == "__main__":
    main()
