"""The LLM engine, framework-free: prepare a chat from plain specs, then send or stream it
through the official `openai` SDK.

Nothing here imports Flask, the request, the app's database or its models: callers (the
services, the CLI) pass `ModelSpec`s, clients and settings in. Layout: `specs` (the
configuration values), `prepare` (presets, option merge, language policy, capability
preflight, token budget), `run` (send, stream, ping), `clients` (the SDK client cache),
`errors` (upstream errors in words), `secrets` (scrubbing), `tokenizer` (offline BPE files),
`budget` (token estimation), `language`, `results` (Result and every result code).
"""
