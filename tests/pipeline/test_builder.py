"""The plan schema, the repair loop against a scripted model, the mock's blueprints, and the
entry points (CLI, REPL intent, sage/buildPipeline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sage_lsp import protocol
from sage_lsp.backends.mock import MockBackend
from sage_lsp.backends.openai_compat import OpenAICompatibleBackend
from sage_lsp.pipeline.blueprints import BLUEPRINTS, pick
from sage_lsp.pipeline.builder import (
    MAX_ATTEMPTS,
    build_pipeline,
    extract_plan,
    is_pipeline_request,
)
from sage_lsp.pipeline.catalog import load_catalog
from sage_lsp.pipeline.schema import STAGE_KINDS, parse_plan, validate
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.rpc_client import RpcClient

VALID = yaml.safe_dump(BLUEPRINTS[0].plan, sort_keys=False)
INVALID = VALID.replace("kind: map", "kind: mapp", 1)


def reply(text: str) -> Reply:
    return Reply(tokens=[text])


def test_validation_reports_every_problem_with_its_path() -> None:
    data = yaml.safe_load(INVALID)
    data["stages"].append(dict(data["stages"][0], kind="map"))
    data["pipeline"].pop("type")
    data["sink"]["colour"] = "blue"
    problems = {str(p) for p in validate(data, set(load_catalog()))}
    assert "stages[0].kind: 'mapp' is not one of map, batch, service, flatmap, filter, keyby" in (
        problems
    )
    assert "stages[3].id: duplicate id 'retrieve-docs' (also stages[0])" in problems
    assert "pipeline.type: is required" in problems
    assert any(p.startswith("sink.colour: unknown key") for p in problems)


def test_extract_plan_from_fences_prose_json_and_yaml() -> None:
    assert extract_plan(f"Sure!\n```yaml\n{VALID}```\nEnjoy.")[0] == BLUEPRINTS[0].plan
    import json

    assert extract_plan("Here: " + json.dumps(BLUEPRINTS[1].plan) + " done")[0] is not None
    assert extract_plan(VALID)[0] == BLUEPRINTS[0].plan
    data, reason = extract_plan("I would use a retriever and a generator.")
    assert data is None and "yaml" in reason


async def test_repair_loop_prose_then_invalid_then_valid() -> None:
    with OpenAIServer() as server:
        server.queue = [reply("Let me think about it."), reply(f"```yaml\n{INVALID}```"),
                        reply(f"```yaml\n{VALID}```")]  # fmt: skip
        backend = OpenAICompatibleBackend("compatible", base_url=server.base_url)
        result = await build_pipeline(backend, "answer questions", load_catalog(), name="qa")
        feedback = [r["messages"][-1]["content"] for r in server.requests]
    assert result.valid and result.attempts == 3 and result.name == "qa"
    assert "no plan found" in feedback[1]
    assert "stages[0].kind: 'mapp' is not one of map" in feedback[2]
    assert yaml.safe_load(result.yaml)["pipeline"]["name"] == "qa"


async def test_a_valid_plan_keeps_its_warnings() -> None:
    custom = VALID.replace("sage.libs.rag.promptor.QAPromptor", "my_ops.Prompt", 1)
    with OpenAIServer() as server:
        server.reply = reply(f"```yaml\n{custom}```")
        backend = OpenAICompatibleBackend("compatible", base_url=server.base_url)
        result = await build_pipeline(backend, "answer questions", load_catalog())
    assert result.valid and result.attempts == 1
    [warning] = result.warnings
    assert warning.startswith("stages[1].class:") and "my_ops.Prompt" in warning


async def test_a_model_that_never_succeeds_stops_after_six() -> None:
    with OpenAIServer() as server:
        server.reply = reply("```yaml\nstages: nope\n```")
        backend = OpenAICompatibleBackend("compatible", base_url=server.base_url)
        result = await build_pipeline(backend, "x", load_catalog())
        assert len(server.requests) == MAX_ATTEMPTS
    assert not result.valid and result.attempts == MAX_ATTEMPTS
    assert "stages: must be a list, not a string" in result.errors


def test_mock_picks_blueprints_by_keywords() -> None:
    assert pick("rerank the passages with BGE").id == "rag-rerank"
    assert pick("用 milvus 向量检索").id == "rag-dense-milvus"
    assert pick("filter the error logs").id == "hello-world-log"
    assert pick("something else entirely").id == "rag-simple-demo"


def test_intent_detection() -> None:
    assert is_pipeline_request("pipeline: rag over my docs") == "rag over my docs"
    assert is_pipeline_request("Please build a pipeline that reranks") is not None
    assert is_pipeline_request("帮我创建一个检索工作流") is not None
    assert is_pipeline_request("what is a pipeline?") is None


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60))
async def test_every_built_plan_validates_and_round_trips(description: str) -> None:
    result = await build_pipeline(MockBackend(delay=0), description, load_catalog())
    data = yaml.safe_load(result.yaml)
    plan, problems = parse_plan(data, set(load_catalog()))
    assert plan is not None and not [p for p in problems if p.severity == "error"]
    assert plan.to_yaml() == result.yaml


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.sampled_from(["map", "mapp", "local", "x.y.Z"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["pipeline", "stages", "source", "sink", "id", "kind",
                                        "class", "params", "name", "type", "other"]) | st.text(
                                            max_size=6), inner, max_size=5),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(yaml_values)
def test_the_validator_never_raises(data: Any) -> None:
    problems = validate(data, set(load_catalog()))
    assert isinstance(problems, list)
    round_trip = yaml.safe_load(yaml.safe_dump(data))
    assert sorted(map(str, validate(round_trip))) == sorted(map(str, validate(data)))


def test_cli_build_writes_a_valid_file(tmp_path: Path) -> None:
    target = tmp_path / "pipelines" / "qa.sage.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", "pipeline", "build", "--goal",
         "rerank retrieved passages", "--name", "my-qa", "--output", str(target)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(target.read_text())
    assert data["pipeline"]["name"] == "my-qa" and validate(data, set(load_catalog())) == []
    printed = subprocess.run(
        [sys.executable, "-m", "sage_lsp.cli", "pipeline", "build", "--goal", "logs"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert yaml.safe_load(printed.stdout)["pipeline"]["name"] == "hello-world-log"


async def test_build_pipeline_over_the_protocol(tmp_path: Path) -> None:
    client = await RpcClient.start()
    await client.initialize({"backend": "mock"})
    uri = (tmp_path / "pipelines" / "qa.sage.yaml").as_uri()
    response = await client.request(
        protocol.BUILD_PIPELINE,
        {"description": "rerank with bge", "name": "qa", "targetUri": uri, "chatId": "c1"},
    )
    result = response["result"]
    assert result["valid"] and result["name"] == "qa" and result["attempts"] == 1
    create, edit = result["edit"]["documentChanges"]
    assert create == {"kind": "create", "uri": uri,
                      "options": {"overwrite": False, "ignoreIfExists": False}}  # fmt: skip
    assert edit["edits"][0]["newText"] == result["yaml"]
    history = (await client.request(protocol.CHAT_HISTORY, {"chatId": "c1"}))["result"]
    assert history["messages"][0]["content"] == "/pipeline rerank with bge"
    empty = await client.request(protocol.BUILD_PIPELINE, {"description": " "})
    assert empty["error"]["code"] == protocol.INVALID_PARAMS
    existing = tmp_path / "kept.sage.yaml"
    existing.write_text("mine\n")
    taken = {"description": "rerank with bge", "targetUri": existing.as_uri()}
    refused = (await client.request(protocol.BUILD_PIPELINE, taken))["error"]
    assert refused["code"] == protocol.INVALID_PARAMS and "already exists" in refused["message"]
    assert existing.read_text() == "mine\n"
    await client.close()


async def test_build_pipeline_failure_is_32004() -> None:
    with OpenAIServer() as server:
        server.reply = reply("No idea.")
        client = await RpcClient.start()
        await client.initialize({"backend": "compatible", "baseUrl": server.base_url})
        response = await client.request(protocol.BUILD_PIPELINE, {"description": "x"})
        await client.close()
    error = response["error"]
    assert error["code"] == protocol.PIPELINE_FAILED and error["data"]["attempts"] == 6
    assert "no plan found" in error["data"]["errors"][0]
    assert set(STAGE_KINDS) >= {"map"}
