"""Configuration as code: export providers → models → presets as YAML, import them back.

The file holds no secret: each API key and header value is written as an environment
reference (`${OPENROUTER_API_KEY}`, `${OPENROUTER_HEADER_X_TITLE}`) that an import resolves.
Rows are matched by natural keys: provider name; provider + model id; model + preset key
(a preset without a key by its name). An import is one transaction: every row is validated
first (the models' own rules, plus duplicates inside the file) and any error, reported with
its path in the file (`providers[2].models[0].key`), writes nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.models import LLMModel, LLMPreset, LLMProvider
from webapp.models.llm import CAPABILITY_COLUMNS
from webapp.services.records import lock_for_writing

PROVIDER_FIELDS = (
    "name",
    "api_format",
    "base_url",
    "api_prefix",
    "api_key",
    "requires_api_key",
    "headers",
    "llm_options_defaults",
    "message_overhead_tokens",
)
MODEL_FIELDS = (
    "model",
    "name",
    "key",
    "enabled",
    "comment",
    *CAPABILITY_COLUMNS,
    "context_window_tokens",
    "message_overhead_tokens",
)
PRESET_FIELDS = ("key", "name", "comment", "llm_options_overrides")
SECRET_FIELDS = ("api_key", "headers")
TEXT_FIELDS = frozenset({"name", "api_format", "base_url", "api_prefix", "model", "key", "comment"})

_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
HEADER = "# ModelDesk configuration (flask config export). Secrets are ${ENV} references.\n"


class ConfigFileError(Exception):
    """The file cannot be imported; `.problems` lists (path, message); nothing was written."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))


@dataclass
class Change:
    """One planned write: `+` create, `~` update, `-` delete; `fields` are (name, old, new)
    with secrets already replaced by the word "changed"."""

    action: str
    entity: str
    label: str
    fields: list[tuple[str, str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = [f"{self.action} {self.entity} {self.label}"]
        return head + [
            f"    {name}: changed" if old == new == "changed" else f"    {name}: {old} → {new}"
            for name, old, new in self.fields
        ]


@dataclass
class ImportPlan:
    changes: list[Change] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # rows not in the file, left (no --prune)
    applied: bool = False

    def lines(self) -> list[str]:
        return [line for change in self.changes for line in change.lines()]

    def counts(self) -> dict[str, int]:
        return {
            action: sum(1 for change in self.changes if change.action == action) for action in "+~-"
        }


# --- export -------------------------------------------------------------------------------


def env_prefix(provider_name: str) -> str:
    """`OpenRouter` → `OPENROUTER`; `Ollama (Local)` → `OLLAMA_LOCAL` (ASCII letters and digits
    only; `PROVIDER` when nothing is left)."""
    words = re.findall(r"[A-Za-z0-9]+", provider_name)
    prefix = "_".join(words).upper() or "PROVIDER"
    return f"P_{prefix}" if prefix[0].isdigit() else prefix


def header_env_name(prefix: str, header_name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", header_name)
    return f"{prefix}_HEADER_{'_'.join(words).upper()}"


def _sorted_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_json(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(item) for item in value]
    return value


def _preset_order(preset: LLMPreset) -> tuple[int, str, str]:
    return (0 if preset.key else 1, preset.key or "", preset.name)


def export_data(session: Session) -> dict[str, Any]:
    """The whole configuration as plain data in a stable order, secrets as env references."""
    # Sorted here, not in SQL: collations differ between databases, the file must not.
    providers = sorted(session.scalars(select(LLMProvider)).all(), key=lambda p: p.name)
    used: set[str] = set()
    out = []
    for provider in providers:
        prefix = env_prefix(provider.name)
        base, n = prefix, 2
        while prefix in used:  # two names that spell the same prefix
            prefix, n = f"{base}_{n}", n + 1
        used.add(prefix)
        models = sorted(provider.llm_models, key=lambda m: m.model)
        out.append(
            {
                "name": provider.name,
                "api_format": provider.api_format,
                "base_url": provider.base_url,
                "api_prefix": provider.api_prefix,
                "api_key": None if provider.api_key is None else f"${{{prefix}_API_KEY}}",
                "requires_api_key": provider.requires_api_key,
                "headers": {
                    name: f"${{{header_env_name(prefix, name)}}}"
                    for name in sorted(provider.headers or {})
                },
                "llm_options_defaults": _sorted_json(provider.llm_options_defaults or {}),
                "message_overhead_tokens": provider.message_overhead_tokens,
                "models": [_model_data(model) for model in models],
            }
        )
    return {"providers": out}


def _model_data(model: LLMModel) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(model, name) for name in MODEL_FIELDS}
    data["presets"] = [
        {
            "key": preset.key,
            "name": preset.name,
            "comment": preset.comment,
            "llm_options_overrides": _sorted_json(preset.llm_options_overrides or {}),
        }
        for preset in sorted(model.llm_presets, key=_preset_order)
    ]
    return data


def export_yaml(session: Session) -> str:
    """`export_data` as YAML text; the same configuration gives the same bytes."""
    body = yaml.safe_dump(
        export_data(session),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return HEADER + body


# --- import -------------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))


def _check_entry(
    entry: Any, path: str, allowed: tuple[str, ...], problems: _Problems
) -> dict[str, Any]:
    if not isinstance(entry, dict):
        problems.add(path, "must be a mapping")
        return {}
    for name, value in entry.items():
        if name not in allowed:
            problems.add(f"{path}.{name}", "is not a known field")
        elif name in TEXT_FIELDS and value is not None and not isinstance(value, str):
            problems.add(f"{path}.{name}", "must be text")
    return entry


def _list_at(entry: dict[str, Any], name: str, path: str, problems: _Problems) -> list[Any]:
    value = entry.get(name) or []
    if not isinstance(value, list):
        problems.add(f"{path}.{name}", "must be a list")
        return []
    return value


def parse_yaml(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigFileError([("(file)", f"is not valid YAML: {error}")]) from error
    if not isinstance(data, dict) or not isinstance(data.get("providers"), list):
        raise ConfigFileError([("providers", "the file must have a `providers:` list")])
    return data


@dataclass
class _Secrets:
    environ: Mapping[str, str]
    keep_secrets: bool
    problems: _Problems

    def resolve(self, value: Any, path: str, stored: Any, has_stored: bool) -> tuple[bool, Any]:
        """(True, value) to write; (False, None) to keep what is stored."""
        if not isinstance(value, str):
            return True, value
        match = _ENV_REFERENCE.match(value)
        if match is None:
            return True, value  # a literal value written by hand
        name = match.group(1)
        if name in self.environ:
            return True, self.environ[name]
        if self.keep_secrets and has_stored:
            return False, stored
        if self.keep_secrets:
            hint = " and there is no stored value to keep"
        else:
            hint = " (--keep-secrets keeps the stored value)"
        self.problems.add(path, f"environment variable {name} is not set{hint}")
        return False, None


def _shown(value: Any) -> str:
    """A value as the plan prints it: text quoted, everything else as in JSON."""
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class _Importer:
    def __init__(
        self, session: Session, environ: Mapping[str, str], keep_secrets: bool, prune: bool
    ) -> None:
        self.session = session
        self.prune = prune
        self.problems = _Problems()
        self.secrets = _Secrets(environ, keep_secrets, self.problems)
        self.plan = ImportPlan()
        self.to_validate: list[tuple[Any, str]] = []
        self.model_keys: dict[str, str] = {}

    def _assign(
        self, record: Any, values: dict[str, Any], change: Change, secret: tuple[str, ...] = ()
    ) -> None:
        for name, value in values.items():
            old = getattr(record, name)
            if record.id is not None and old == value:
                continue
            setattr(record, name, value)
            new = getattr(record, name)  # as the model normalizes it (stripped, lower-cased)
            if record.id is None or old == new:
                continue
            if name in secret:
                change.fields.append((name, "changed", "changed"))
            else:
                change.fields.append((name, _shown(old), _shown(new)))

    def _record(self, record: Any, change: Change, path: str) -> None:
        if record.id is None or change.fields:
            self.plan.changes.append(change)
        self.to_validate.append((record, path))

    def run(self, data: dict[str, Any]) -> None:
        existing = {p.name: p for p in self.session.scalars(select(LLMProvider)).all()}
        seen: dict[str, str] = {}
        for index, raw in enumerate(data["providers"]):
            path = f"providers[{index}]"
            entry = _check_entry(raw, path, (*PROVIDER_FIELDS, "models"), self.problems)
            if not entry:
                continue
            name = entry.get("name")
            name = name.strip() if isinstance(name, str) else name
            if isinstance(name, str) and name in seen:
                self.problems.add(f"{path}.name", f"is a duplicate of {seen[name]}.name")
            elif isinstance(name, str):
                seen[name] = path
            provider = existing.get(name) if isinstance(name, str) else None
            self._provider(entry, path, provider)
        if self.prune:
            for name, provider in sorted(existing.items()):
                if name not in seen:
                    self._delete(provider, "provider", name)
        else:
            self.plan.kept += [f"provider {name}" for name in sorted(existing) if name not in seen]

    def _provider(self, entry: dict[str, Any], path: str, provider: LLMProvider | None) -> None:
        values = {name: entry[name] for name in PROVIDER_FIELDS if name in entry}
        values.pop("api_key", None)
        values.pop("headers", None)
        is_new = provider is None
        if provider is None:
            provider = LLMProvider()
            self.session.add(provider)
        change = Change("+" if is_new else "~", "provider", str(entry.get("name")))
        secret_values: dict[str, Any] = {}
        if "api_key" in entry:
            stored = None if is_new else provider.api_key
            write, value = self.secrets.resolve(
                entry["api_key"], f"{path}.api_key", stored, not is_new and stored is not None
            )
            if write:
                secret_values["api_key"] = value
        # Headers not in the entry: the stored ones stay (as any field left out).
        headers = entry.get("headers") or {}
        if "headers" in entry and not isinstance(headers, dict):
            self.problems.add(f"{path}.headers", "must be a mapping")
        elif "headers" in entry:
            stored_headers = {} if is_new else dict(provider.headers or {})
            resolved = {}
            for header, value in headers.items():
                write, got = self.secrets.resolve(
                    value,
                    f"{path}.headers.{header}",
                    stored_headers.get(header),
                    header in stored_headers,
                )
                resolved[header] = got if write else stored_headers.get(header)
            secret_values["headers"] = resolved
        with self.session.no_autoflush:
            self._assign(provider, values, change)
            self._assign(provider, secret_values, change, secret=SECRET_FIELDS)
        self._record(provider, change, path)
        self._models(entry, path, provider)

    def _models(self, entry: dict[str, Any], path: str, provider: LLMProvider) -> None:
        existing = {m.model: m for m in provider.llm_models} if provider.id else {}
        seen: dict[str, str] = {}
        for index, raw in enumerate(_list_at(entry, "models", path, self.problems)):
            model_path = f"{path}.models[{index}]"
            model_entry = _check_entry(raw, model_path, (*MODEL_FIELDS, "presets"), self.problems)
            if not model_entry:
                continue
            model_id = model_entry.get("model")
            model_id = model_id.strip() if isinstance(model_id, str) else model_id
            if isinstance(model_id, str) and model_id in seen:
                self.problems.add(
                    f"{model_path}.model", f"is a duplicate of {seen[model_id]}.model"
                )
            elif isinstance(model_id, str):
                seen[model_id] = model_path
            key = model_entry.get("key")
            if isinstance(key, str) and key.strip():
                key = key.strip().lower()
                if key in self.model_keys:
                    self.problems.add(
                        f"{model_path}.key", f"is a duplicate of {self.model_keys[key]}.key"
                    )
                self.model_keys[key] = model_path
            model = existing.get(model_id) if isinstance(model_id, str) else None
            is_new = model is None
            label = f"{provider.name}/{model_id}"
            with self.session.no_autoflush:
                if model is None:
                    model = LLMModel(llm_provider=provider)
                    self.session.add(model)
                change = Change("+" if is_new else "~", "model", label)
                values = {name: model_entry[name] for name in MODEL_FIELDS if name in model_entry}
                self._assign(model, values, change)
            self._record(model, change, model_path)
            self._presets(model_entry, model_path, model, label)
        self._leftovers(existing, seen, "model", lambda m: f"{provider.name}/{m}")

    def _presets(self, entry: dict[str, Any], path: str, model: LLMModel, label: str) -> None:
        rows = list(model.llm_presets) if model.id else []
        by_key = {p.key: p for p in rows if p.key}
        by_name = {p.name: p for p in rows if not p.key}
        seen: dict[str, str] = {}
        matched: set[int] = set()
        for index, raw in enumerate(_list_at(entry, "presets", path, self.problems)):
            preset_path = f"{path}.presets[{index}]"
            preset_entry = _check_entry(raw, preset_path, PRESET_FIELDS, self.problems)
            if not preset_entry:
                continue
            key = preset_entry.get("key")
            key = key.strip().lower() if isinstance(key, str) and key.strip() else None
            name = preset_entry.get("name")
            natural = f"key {key}" if key else f"name {name}"
            if natural in seen:
                field_name = "key" if key else "name"
                self.problems.add(
                    f"{preset_path}.{field_name}", f"is a duplicate of {seen[natural]}.{field_name}"
                )
            seen[natural] = preset_path
            preset = by_key.get(key) if key else by_name.get(name)  # type: ignore[arg-type]
            is_new = preset is None
            with self.session.no_autoflush:
                if preset is None:
                    preset = LLMPreset(llm_model=model)
                    self.session.add(preset)
                else:
                    matched.add(preset.id)
                change = Change("+" if is_new else "~", "preset", f"{label}/{key or name}")
                values = {n: preset_entry[n] for n in PRESET_FIELDS if n in preset_entry}
                self._assign(preset, values, change)
            self._record(preset, change, preset_path)
        leftovers = {p.id: p for p in rows if p.id not in matched}
        self._leftovers(leftovers, {}, "preset", lambda i: f"{label}/{_preset_label(rows, i)}")

    def _leftovers(self, existing: dict[Any, Any], seen: dict[Any, str], entity: str, label: Any):
        for natural, record in existing.items():
            if natural in seen:
                continue
            if self.prune:
                self._delete(record, entity, label(natural))
            else:
                self.plan.kept.append(f"{entity} {label(natural)}")

    def _delete(self, record: Any, entity: str, label: str) -> None:
        self.plan.changes.append(Change("-", entity, label))
        self.session.delete(record)

    def validate(self) -> None:
        with self.session.no_autoflush:
            for record, path in self.to_validate:
                if record in self.session.deleted:
                    continue
                for name, messages in record.validation_errors().items():
                    target = path if name in ("llm_provider", "llm_model") else f"{path}.{name}"
                    for message in messages:
                        self.problems.add(target, message)


def _preset_label(rows: list[LLMPreset], preset_id: int) -> str:
    preset = next(p for p in rows if p.id == preset_id)
    return preset.key or preset.name


def import_yaml(
    session: Session,
    text: str,
    *,
    dry_run: bool = False,
    prune: bool = False,
    keep_secrets: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ImportPlan:
    """Create or update (and with `prune` delete) rows to match the file, in one transaction.

    Returns the plan (applied unless `dry_run`). Raises `ConfigFileError` with every problem
    found (path in the file, message); nothing is written then, nor on a dry run.
    """
    data = parse_yaml(text)
    importer = _Importer(session, os.environ if environ is None else environ, keep_secrets, prune)
    try:
        if not dry_run:
            lock_for_writing(session)
        # Nothing reaches the database before every row is checked.
        with session.no_autoflush:
            importer.run(data)
            importer.validate()
        if importer.problems.items:
            raise ConfigFileError(importer.problems.items)
        if dry_run:
            session.rollback()
            return importer.plan
        session.commit()
    except Exception:
        session.rollback()
        raise
    importer.plan.applied = True
    return importer.plan
