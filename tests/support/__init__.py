"""Helpers shared by the test modules (a test module never imports another test module).

- `app`: the test configuration (`make_config`) and `LiveServer`, the app on a loopback port.
- `database`: dropping and emptying the test database.
- `users`: the test accounts and signing in (test client, HTTP client, browser).
- `waiting`: `wait_for`, polling a condition with a deadline instead of sleeping.
- `net`: loopback addresses (a closed port, a free port).
- `factories`: small builders for provider / model / preset rows.
- `mock_api`: the mock OpenAI API on its own server, as the service tests use it.
- `chat_http`: the chat over real HTTP against a live server's own mock (SSE frames, statuses).
- `routes`: walking the URL map.
- `mock_fixtures`: the `mock_server` / `mock_api` fixtures (a pytest plugin loaded by conftest).
"""
