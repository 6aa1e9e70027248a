"""Settings: defaults < config file (``$SAGE_HOME/config.toml``) < environment < explicit values.

Every setting is declared once, on its dataclass field (:func:`setting`): the field's name is its
python name (snake_case, also its key in the config file), from which its protocol name is derived
(camelCase, used by ``initializationOptions`` and ``workspace/didChangeConfiguration``); the
declaration gives the parser that checks its value and the environment variables that may set it.
A bad value raises :class:`SettingsError`, which names the setting, the value and where it came
from. docs/configuration.md lists every setting.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from sage_lsp.core.errors import InvalidInput
from sage_lsp.paths import SAGE_HOME_ENV, SagePaths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

BACKENDS = ("mock", "openai", "compatible", "finetune", "vllm", "ollama")
"""Every backend name the ``backend`` setting accepts."""

FIM_TEMPLATES = ("auto", "chat", "qwen", "starcoder", "deepseek", "codellama")
"""Values of ``completion.fimTemplate`` (sage_lsp.completion.templates has the formats)."""

LOG_LEVELS = ("error", "warning", "info", "debug")
"""Levels the ``log_level`` setting accepts."""
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The ``--max-lora-rank`` values vLLM accepts."""
DEFAULT_INDEX = "docs-public"
"""The retrieval index built from sage-lsp's own docs on first use."""

DEFAULT_SYSTEM_PROMPT = (
    "You are SAGE's code assistant, running from the user's editor or terminal. "
    "Answer concisely and accurately; use fenced code blocks for code. "
    "If you are not sure, say so."
)


class SettingsError(InvalidInput, ValueError):
    """A setting has a bad value; the message names the setting, the value and its source."""


# ---------------------------------------------------------------------------------------------
# value parsers: each takes a raw value (from TOML, JSON or an environment string) and returns
# the typed value, or raises ValueError with the reason.


def _choice(options: Iterable[str]) -> Callable[[object], str]:
    allowed = tuple(options)

    def parse(raw: object) -> str:
        if not isinstance(raw, str) or raw.strip().lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw.strip().lower()

    return parse


def _optional_text(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError("must be a string")
    return raw.strip() or None


def _text(raw: object) -> str:
    value = _optional_text(raw)
    if value is None:
        raise ValueError("must be a non-empty string")
    return value


MODEL_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
"""A finetuned model's name is one path component: letters, digits, '.', '_', '-'."""


def model_name(raw: object) -> str:
    """A finetuned model name (never a path)."""
    value = _text(raw)
    if not MODEL_NAME.match(value) or value in {".", ".."}:
        raise ValueError("must be one folder name: letters, digits, '.', '_' and '-' only")
    return value


def _optional_index(raw: object) -> str | None:
    value = _optional_text(raw)
    return None if value is None or value.lower() == "none" else value


def _url(raw: object) -> str | None:
    value = _optional_text(raw)
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/") if value else None


def _number(raw: object, kind: type[int] | type[float]) -> float:
    if isinstance(raw, bool):
        raise ValueError("must be a number")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    else:
        raise ValueError("must be a number")
    if kind is int and not value.is_integer():
        raise ValueError("must be a whole number")
    return value


def _int_range(low: int, high: int) -> Callable[[object], int]:
    def parse(raw: object) -> int:
        value = int(_number(raw, int))
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _optional_lora_rank(raw: object) -> int | None:
    if raw is None or raw == "":
        return None
    value = int(_number(raw, int))
    if value not in LORA_RANKS:
        raise ValueError(f"must be one of {', '.join(map(str, LORA_RANKS))}")
    return value


def _optional_positive_int(raw: object) -> int | None:
    if raw is None or raw == "":
        return None
    return _int_range(1, 10_000_000)(raw)


def _non_negative(raw: object) -> float:
    value = _number(raw, float)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive(raw: object) -> float:
    value = _number(raw, float)
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(raw, str) and raw.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _arguments(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        try:
            return tuple(shlex.split(raw))
        except ValueError as exc:
            raise ValueError(f"cannot be split into arguments ({exc})") from None
    if isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise ValueError("must be a list of strings or one string split as a shell would")


def _path(raw: object) -> Path:
    return Path(_text(raw)).expanduser()


def _camel(name: str) -> str:
    """``top_k`` -> ``topK``."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its names in each source, its parser and its environment variables.

    Declared on its dataclass field (:func:`declare`); :data:`SPECS` collects them."""

    name: str
    """Python name and config-file key; ``vllm.python`` for a key of the ``[vllm]`` table."""
    parse: Callable[[object], Any]
    """Turns a raw value into the typed value or raises ValueError with the reason."""
    env: tuple[str, ...] = ()
    """Environment variables that set it, the first one set wins."""
    program: bool = False
    """It names a program to run or where files are: never taken from one request."""

    @property
    def protocol_name(self) -> str:
        """camelCase name used by the editor protocol (``vllm.extraArgs`` inside ``vllm``),
        derived from :attr:`name`."""
        return ".".join(_camel(part) for part in self.name.split("."))

    @property
    def flag(self) -> str:
        """The command-line flag spelling, e.g. ``--top-k``."""
        return "--" + self.name.replace("_", "-")


_SPEC = "sage_lsp.setting"
"""The field metadata key of a setting's declaration."""
_TABLE = "sage_lsp.table"
"""The field metadata key of a table of settings (its dataclass)."""


def declare(parse: Callable[[object], Any], *env: str, program: bool = False) -> dict[str, Any]:
    """Field metadata declaring a setting: its parser, the environment variables that set it
    (the first one set wins) and whether it names a program or a path (see
    :func:`apply_override`). Its names come from the field's."""
    return {_SPEC: SettingSpec("", parse, env, program)}


_T = TypeVar("_T")


def setting(default: _T, parse: Callable[[object], object], *env: str, program: bool = False) -> _T:
    """A settings field: its ``default`` and its declaration (:func:`declare`)."""
    return field(default=default, metadata=declare(parse, *env, program=program))


@dataclass(frozen=True)
class VllmSettings:
    """How the ``finetune`` backend runs vLLM (the ``[vllm]`` table, the protocol's ``vllm``)."""

    python: str | None = setting(None, _optional_text, "SAGE_VLLM_PYTHON", program=True)
    """The Python that runs vLLM; ``None`` means the interpreter running sage-lsp."""
    extra_args: tuple[str, ...] = setting((), _arguments, "SAGE_VLLM_ARGS", program=True)
    """Extra command-line arguments for the vLLM server."""
    startup_timeout_seconds: float = setting(900.0, _positive)
    """How long a launched server may take to serve the model."""
    tensor_parallel_size: int = setting(1, _int_range(1, 1024))
    """GPUs one model is split over (``--tensor-parallel-size``)."""
    serve_adapter: bool = setting(False, _boolean)
    """Serve finetuned models as LoRA adapters on one vLLM per base model, instead of merging."""
    max_lora_rank: int | None = setting(None, _optional_lora_rank)
    """``--max-lora-rank`` of a base's LoRA service; ``None``: the smallest that fits the
    largest adapter of that base in the store."""
    max_loras: int = setting(4, _int_range(1, 256))
    """``--max-loras``: adapters of one base in one batch."""


@dataclass(frozen=True)
class CompletionSettings:
    """Inline completion (``textDocument/inlineCompletion``; the ``[completion]`` table, the
    protocol's ``completion``)."""

    enabled: bool = setting(True, _boolean)
    """Whether the server answers inline completions (an empty list when not)."""
    prefix_lines: int = setting(100, _int_range(0, 10_000))
    """Lines before the cursor's line the model is shown."""
    suffix_lines: int = setting(40, _int_range(0, 10_000))
    """Lines after the cursor's line the model is shown."""
    max_tokens: int = setting(64, _int_range(1, 4096))
    """Largest completion, in tokens."""
    fim_template: str = setting("auto", _choice(FIM_TEMPLATES))
    """The fill-in-the-middle format: ``auto`` (by the tokenizer or the model's name), ``chat``
    (always through chat), or ``qwen``, ``starcoder``, ``deepseek``, ``codellama``."""


def _default_home() -> Path:
    return Path.home() / ".sage"


@dataclass(frozen=True)
class Settings:
    """Everything a chat session needs to know, resolved from all sources.

    Each field declares its setting (:func:`setting`); docs/configuration.md lists them."""

    sage_home: Path = field(
        default_factory=_default_home, metadata=declare(_path, SAGE_HOME_ENV, program=True)
    )
    """Root of sage-lsp's files (``SAGE_HOME``)."""
    backend: str = setting("mock", _choice(BACKENDS), "SAGE_DEBUG_BACKEND")
    """Which backend answers: one of :data:`BACKENDS`."""
    model: str | None = setting(None, _optional_text, "SAGE_MODEL")
    """Model name sent to the backend; ``None`` asks the server (or uses the backend default)."""
    base_url: str | None = setting(None, _url, "SAGE_BASE_URL")
    """OpenAI-compatible endpoint, ending in ``/v1``; ``None`` uses the backend default."""
    api_key: str | None = setting(
        None, _optional_text, "SAGE_CHAT_API_KEY", "TEMP_GENERATOR_API_KEY"
    )
    """API key for the backend."""
    finetune_model: str = setting("sage_code_expert", model_name, "SAGE_DEBUG_FINETUNE_MODEL")
    """Name of the finetuned model under ``$SAGE_HOME/finetune_output/``."""
    finetune_port: int = setting(8000, _int_range(1, 65535), "SAGE_FINETUNE_PORT")
    """Port the finetuned model's vLLM server should use."""
    index: str | None = setting(DEFAULT_INDEX, _optional_index, "SAGE_INDEX")
    """Retrieval index name, or ``None`` for no retrieval."""
    top_k: int = setting(4, _int_range(1, 20), "SAGE_TOP_K")
    """How many retrieved passages go into the prompt (1..20)."""
    ingest_max_file_mb: float = setting(10.0, _positive, "SAGE_INGEST_MAX_FILE_MB")
    """Ingest skips (without reading) files larger than this many MiB, with a warning."""
    keep_alive_seconds: float = setting(0.0, _non_negative, "SAGE_KEEP_ALIVE_SECONDS")
    """How long a launched service outlives its last editor session."""
    system_prompt: str = setting(DEFAULT_SYSTEM_PROMPT, _text, "SAGE_SYSTEM_PROMPT")
    """System prompt that starts every conversation."""
    history_tokens: int = setting(6000, _int_range(256, 10_000_000))
    """Budget (estimated tokens) of the history sent to the model; oldest turns go first."""
    context_tokens: int = setting(3000, _int_range(100, 10_000_000))
    """Budget (estimated tokens) of the editor context attached to a question; over it, the
    largest documents are shortened."""
    max_tokens: int | None = setting(None, _optional_positive_int, "SAGE_MAX_TOKENS")
    """Largest answer the model may give, or ``None`` for the server's default."""
    request_timeout_seconds: float = setting(600.0, _positive, "SAGE_REQUEST_TIMEOUT_SECONDS")
    """How long to wait for the model to answer (per read of the stream)."""
    merge_python: str | None = setting(None, _optional_text, "SAGE_MERGE_PYTHON", program=True)
    """The Python that merges LoRA adapters; ``None`` means ``vllm.python``."""
    embeddings: str = setting("none", _choice(("none", "endpoint", "local")), "SAGE_EMBEDDINGS")
    """Dense retrieval: ``none``, ``endpoint`` (OpenAI-compatible /v1/embeddings) or ``local``
    (an installed sentence-transformers model)."""
    embedding_model: str | None = setting(None, _optional_text, "SAGE_EMBEDDING_MODEL")
    """The embedding model's name (endpoint) or folder/cached name (local)."""
    embedding_base_url: str | None = setting(None, _url, "SAGE_EMBEDDING_BASE_URL")
    """The embeddings endpoint; ``None`` means ``base_url``."""
    log_level: str = setting("warning", _choice(LOG_LEVELS), "SAGE_LOG_LEVEL")
    """Lowest level of the language server's log lines also sent to the editor."""
    vllm: VllmSettings = field(default_factory=VllmSettings, metadata={_TABLE: VllmSettings})
    """How vLLM is run for the ``finetune`` backend."""
    completion: CompletionSettings = field(
        default_factory=CompletionSettings, metadata={_TABLE: CompletionSettings}
    )
    """Inline completion."""

    @property
    def paths(self) -> SagePaths:
        """The files and folders under :attr:`sage_home`."""
        return SagePaths(self.sage_home)


def _declared(cls: type, prefix: str = "") -> Iterator[SettingSpec]:
    """The settings declared on the fields of dataclass ``cls``, tables' keys as
    ``table.key``."""
    for item in fields(cls):
        if _TABLE in item.metadata:
            yield from _declared(item.metadata[_TABLE], f"{prefix}{item.name}.")
        else:
            yield replace(item.metadata[_SPEC], name=prefix + item.name)


SPECS: tuple[SettingSpec, ...] = tuple(_declared(Settings))
"""Every setting, in the order of its declaration."""

_BY_NAME = {spec.name: spec for spec in SPECS}
_BY_PROTOCOL_NAME = {spec.protocol_name: spec for spec in SPECS}


def flatten(values: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Flatten nested tables: ``{"vllm": {"python": "x"}}`` becomes ``{"vllm.python": "x"}``."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def spec_for(key: str) -> SettingSpec | None:
    """Find a setting by its python or protocol name (``top_k``, ``topK``, ``vllm.extraArgs``)."""
    return _BY_NAME.get(key) or _BY_PROTOCOL_NAME.get(key)


def parse_value(spec: SettingSpec, raw: object, source: str, key: str | None = None) -> Any:
    """Parse one raw value, raising :class:`SettingsError` naming the key (as the source spells
    it) and the source."""
    try:
        return spec.parse(raw)
    except ValueError as exc:
        raise SettingsError(
            f"invalid {key or spec.name} = {raw!r} (from {source}): {exc}"
        ) from None


def read_config_file(path: Path) -> dict[str, object]:
    """Read a config file into flat ``{name: raw value}``; a missing file is empty.

    A file that cannot be read, is not UTF-8 (as TOML requires) or is not TOML raises
    :class:`SettingsError` with one line naming the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"{path} is not valid TOML: not UTF-8 text (byte {exc.object[exc.start]:#04x} "
            f"at offset {exc.start})"
        ) from None
    try:
        return flatten(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        reason = " ".join(str(exc).split())
        raise SettingsError(f"{path} is not valid TOML: {reason}") from None


def apply(base: Settings, raw: Mapping[str, object], source: str, *, strict: bool) -> Settings:
    """Return ``base`` with the values of one source applied.

    ``raw`` maps python or protocol names (flat or nested) to raw values. Unknown keys raise
    :class:`SettingsError` when ``strict`` (a typo in a config file should not pass silently) and
    are ignored otherwise (an editor may send settings of a newer protocol).
    """
    parsed: dict[str, Any] = {}
    for key, value in flatten(raw).items():
        spec = spec_for(key)
        if spec is None:
            if strict:
                raise SettingsError(f"unknown setting {key!r} (from {source})")
            continue
        parsed[spec.name] = parse_value(spec, value, source, key)
    return _assign(base, parsed)


def apply_override(base: Settings, raw: Mapping[str, object], source: str) -> Settings:
    """``base`` with a per-request override applied (unknown keys ignored).

    Raises :class:`SettingsError` naming the key for a setting that names a program or a path
    (declared ``program``): those come only from the config file, the environment, flags and
    the editor's settings.
    """
    for key in flatten(raw):
        spec = spec_for(key)
        if spec is not None and spec.program:
            raise SettingsError(
                f"{key} cannot be set per request (from {source}): it names a program or a "
                "path; set it in the editor's settings or in config.toml"
            )
    return apply(base, raw, source, strict=False)


def _assign(base: Settings, values: Mapping[str, Any]) -> Settings:
    """``base`` with settings named as in :data:`SPECS` (``top_k``, ``vllm.python``) set to
    parsed values."""
    top: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        group, _, attr = name.rpartition(".")
        (tables.setdefault(group, {}) if group else top)[attr] = value
    for group, table in tables.items():
        top[group] = replace(getattr(base, group), **table)
    return replace(base, **top)


def apply_valid(
    base: Settings, raw: Mapping[str, object], source: str, *, current: Settings | None = None
) -> tuple[Settings, list[str]]:
    """Apply every valid key of one source; return the settings and an error per bad key.

    For editors: a bad value is reported and the previous value stays (the one in ``current``,
    by default ``base``), while the good keys of the same change still take effect. Unknown keys
    are ignored.
    """
    settings = base
    errors: list[str] = []
    for key, value in flatten(raw).items():
        try:
            settings = apply(settings, {key: value}, source, strict=False)
        except SettingsError as exc:
            errors.append(str(exc))
            spec = spec_for(key)
            if current is not None and spec is not None:
                settings = _assign(settings, {spec.name: _value(current, spec.name)})
    return settings, errors


def _value(settings: Settings, name: str) -> Any:
    """The value of the setting named ``name`` (``top_k``, ``vllm.python``)."""
    group, _, attr = name.rpartition(".")
    return getattr(getattr(settings, group) if group else settings, attr)


def from_environment(env: Mapping[str, str]) -> tuple[dict[str, object], dict[str, str]]:
    """Collect the raw values the environment sets, and which variable set each."""
    values: dict[str, object] = {}
    origin: dict[str, str] = {}
    for spec in SPECS:
        for var in spec.env:
            if env.get(var, "") != "":
                values[spec.name] = env[var]
                origin[spec.name] = var
                break
    return values, origin


def load_settings(
    overrides: Mapping[str, object] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    source: str = "command line",
) -> Settings:
    """Resolve settings: defaults < ``$SAGE_HOME/config.toml`` < environment < ``overrides``.

    ``overrides`` are explicit values (command-line flags, ``initializationOptions``); keys whose
    value is ``None`` are left out so that an absent flag does not hide a lower layer.
    """
    env = os.environ if env is None else env
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    env_values, env_origin = from_environment(env)

    settings = Settings()
    home_source = "default"
    if "sage_home" in given:
        home_source = source
        settings = apply(settings, {"sage_home": given["sage_home"]}, source, strict=True)
    elif "sage_home" in env_values:
        home_source = f"environment variable {env_origin['sage_home']}"
        settings = apply(settings, {"sage_home": env_values["sage_home"]}, home_source, strict=True)

    config_path = settings.paths.config_file
    file_values = read_config_file(config_path)
    if "sage_home" in file_values:
        raise SettingsError(
            f"sage_home cannot be set in {config_path} (it says where that file is); "
            f"set {SAGE_HOME_ENV} instead (now from {home_source})"
        )
    settings = apply(settings, file_values, str(config_path), strict=True)
    for name, value in env_values.items():
        settings = apply(
            settings, {name: value}, f"environment variable {env_origin[name]}", strict=True
        )
    for name, value in given.items():
        spec = spec_for(name)
        where = f"{source} {spec.flag}" if spec and source == "command line" else source
        settings = apply(settings, {name: value}, where, strict=True)

    if settings.backend == "openai" and settings.api_key is None and env.get("OPENAI_API_KEY"):
        settings = replace(settings, api_key=env["OPENAI_API_KEY"])
    return settings


def setting_names() -> list[str]:
    """Python names of every setting (for documentation and tests)."""
    return [spec.name for spec in SPECS]
