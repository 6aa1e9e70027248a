"""Settings: every layer, the precedence between them, and clear errors for bad values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sage_lsp.config import (
    SPECS,
    Settings,
    SettingsError,
    apply_override,
    load_settings,
    setting_names,
)

ROOT = Path(__file__).resolve().parents[1]


def write_config(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(sage_home: Path) -> None:
    settings = load_settings(env={"SAGE_HOME": str(sage_home)})
    assert settings.backend == "mock"
    assert settings.finetune_model == "sage_code_expert"
    assert settings.finetune_port == 8000
    assert settings.top_k == 4 and settings.index == "docs-public"
    assert settings.sage_home == sage_home
    assert settings.vllm.startup_timeout_seconds == 900


def test_home_defaults_to_dot_sage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings(env={}).sage_home == tmp_path / ".sage"


def test_precedence_flag_over_env_over_file(sage_home: Path) -> None:
    write_config(sage_home, 'backend = "ollama"\nmodel = "from-file"\ntop_k = 7\n')
    env = {"SAGE_HOME": str(sage_home), "SAGE_DEBUG_BACKEND": "vllm", "SAGE_MODEL": "from-env"}
    assert load_settings(env={"SAGE_HOME": str(sage_home)}).backend == "ollama"
    settings = load_settings(env=env)
    assert (settings.backend, settings.model, settings.top_k) == ("vllm", "from-env", 7)
    settings = load_settings({"backend": "compatible", "model": None}, env=env)
    assert (settings.backend, settings.model) == ("compatible", "from-env")


def test_sage_debug_variables_from_the_sage_note(sage_home: Path) -> None:
    env = {
        "SAGE_HOME": str(sage_home),
        "SAGE_DEBUG_BACKEND": "finetune",
        "SAGE_DEBUG_FINETUNE_MODEL": "my_model",
    }
    settings = load_settings(env=env)
    assert (settings.backend, settings.finetune_model) == ("finetune", "my_model")


def test_api_key_variables_and_openai_fallback(sage_home: Path) -> None:
    home = {"SAGE_HOME": str(sage_home)}
    assert load_settings(env={**home, "TEMP_GENERATOR_API_KEY": "t"}).api_key == "t"
    both = {**home, "TEMP_GENERATOR_API_KEY": "t", "SAGE_CHAT_API_KEY": "s"}
    assert load_settings(env=both).api_key == "s"
    openai_env = {**home, "OPENAI_API_KEY": "o"}
    assert load_settings(env=openai_env).api_key is None
    assert load_settings({"backend": "openai"}, env=openai_env).api_key == "o"
    assert load_settings({"backend": "openai", "api_key": "flag"}, env=openai_env).api_key == "flag"


def test_vllm_table_and_environment(sage_home: Path) -> None:
    write_config(
        sage_home,
        '[vllm]\npython = "/opt/vllm/bin/python"\nextra_args = ["--dtype", "float32"]\n'
        "serve_adapter = true\n",
    )
    settings = load_settings(env={"SAGE_HOME": str(sage_home)})
    assert settings.vllm.python == "/opt/vllm/bin/python"
    assert settings.vllm.extra_args == ("--dtype", "float32")
    assert settings.vllm.serve_adapter is True
    env = {"SAGE_HOME": str(sage_home), "SAGE_VLLM_ARGS": "--max-model-len 512 --x 'a b'"}
    assert load_settings(env=env).vllm.extra_args == ("--max-model-len", "512", "--x", "a b")


def test_protocol_names_are_accepted_in_overrides(sage_home: Path) -> None:
    settings = load_settings(
        {"topK": 9, "vllm": {"extraArgs": ["-tp", "2"]}},
        env={"SAGE_HOME": str(sage_home)},
        source="initializationOptions",
    )
    assert settings.top_k == 9 and settings.vllm.extra_args == ("-tp", "2")


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("file", "invalid top_k = 50 (from {path}): must be between 1 and 20"),
        ("env", "invalid top_k = '50' (from environment variable SAGE_TOP_K): must be between"),
        ("flag", "invalid top_k = 50 (from command line --top-k): must be between 1 and 20"),
    ],
)
def test_invalid_value_names_the_setting_and_its_source(
    sage_home: Path, where: str, expected: str
) -> None:
    path = write_config(sage_home, "top_k = 50\n" if where == "file" else "")
    env = {"SAGE_HOME": str(sage_home)}
    if where == "env":
        env["SAGE_TOP_K"] = "50"
    overrides = {"top_k": 50} if where == "flag" else {}
    with pytest.raises(SettingsError) as err:
        load_settings(overrides, env=env)
    assert expected.format(path=path) in str(err.value)


def test_bad_backend_port_url_and_unknown_key(sage_home: Path) -> None:
    env = {"SAGE_HOME": str(sage_home)}
    with pytest.raises(SettingsError, match=r"backend = 'gpt' .* must be one of mock, openai"):
        load_settings({"backend": "gpt"}, env=env)
    with pytest.raises(SettingsError, match=r"finetune_port = 'eighty'.*must be a number"):
        load_settings(env={**env, "SAGE_FINETUNE_PORT": "eighty"})
    with pytest.raises(SettingsError, match=r"base_url = 'localhost:8000'.*http://"):
        load_settings({"base_url": "localhost:8000"}, env=env)
    path = write_config(sage_home, "top_kk = 3\n")
    with pytest.raises(SettingsError, match=f"unknown setting 'top_kk' \\(from {path}\\)"):
        load_settings(env=env)


def test_broken_toml_is_a_clear_error(sage_home: Path) -> None:
    path = write_config(sage_home, "backend = \n")
    with pytest.raises(SettingsError, match=f"{path} is not valid TOML"):
        load_settings(env={"SAGE_HOME": str(sage_home)})


def test_a_config_file_that_is_not_utf8_is_a_clear_error(sage_home: Path) -> None:
    path = sage_home / "config.toml"
    path.write_bytes(b'backend = "mock"\nmodel = "caf\xe9"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"SAGE_HOME": str(sage_home)})
    assert str(caught.value) == (
        f"{path} is not valid TOML: not UTF-8 text (byte 0xe9 at offset 29)"
    )


def test_index_none_turns_retrieval_off(sage_home: Path) -> None:
    assert load_settings({"index": "none"}, env={"SAGE_HOME": str(sage_home)}).index is None


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [name for name in setting_names() if f"`{name}`" not in doc]
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_every_setting_is_documented_with_its_protocol_name_and_variables() -> None:
    rows = {
        cells[0]: cells
        for line in (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    for spec in SPECS:
        protocol_name, env = rows[f"`{spec.name}`"][1:3]
        assert protocol_name == f"`{spec.protocol_name}`", spec.name
        assert tuple(re.findall(r"`([A-Z_]+)`", env)) == spec.env, spec.name


@pytest.mark.parametrize(
    ("name", "protocol_name"),
    [
        ("top_k", "topK"),
        ("ingest_max_file_mb", "ingestMaxFileMb"),
        ("embedding_base_url", "embeddingBaseUrl"),
        ("vllm.extra_args", "vllm.extraArgs"),
        ("vllm.python", "vllm.python"),
    ],
)
def test_protocol_names_are_camel_case_of_the_field_names(name: str, protocol_name: str) -> None:
    assert {spec.name: spec.protocol_name for spec in SPECS}[name] == protocol_name


@pytest.mark.parametrize("key", ["sageHome", "merge_python", "mergePython", "vllm.python"])
def test_settings_naming_programs_or_paths_are_refused_per_request(key: str) -> None:
    with pytest.raises(SettingsError, match=f"^{re.escape(key)} cannot be set per request"):
        apply_override(Settings(), {key: "/tmp/x"}, "sage/chat")
    assert apply_override(Settings(), {"topK": 3}, "sage/chat").top_k == 3
