"""The contract docs are generated from the code (`make docs`) and checked in: regenerate
them in memory and compare, and check that every example fits its model."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
import yaml

from mutualaid.cli import docs
from mutualaid.cli.examples import contract_types, example_envelope
from mutualaid.contracts import Command, topics
from mutualaid.contracts.envelope import CloudEvent

pytestmark = pytest.mark.domain

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return docs.render()


def test_the_checked_in_docs_are_what_the_code_gives(generated: dict[str, str]) -> None:
    assert docs.default_docs_dir() == DOCS
    stale = docs.stale(DOCS, generated)
    assert not stale, f"out of date: {', '.join(stale)}: run `make docs` and commit the result"


def test_the_output_does_not_depend_on_the_environment(generated: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    monkeypatch.setenv("BILLING_ROLE", "worker")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")
    assert docs.render(("billing",))["asyncapi/billing.json"] == \
        generated["asyncapi/billing.json"]


@pytest.mark.parametrize("type_name", list(contract_types()))
def test_every_example_fits_its_model(type_name: str) -> None:
    model = contract_types()[type_name]
    example = example_envelope(model)
    envelope = CloudEvent.model_validate(example)
    data = model.model_validate_json(orjson.dumps(envelope.data))
    assert envelope.type == type_name and envelope.subject == data.subject()


def test_events_md_names_every_topic_key_and_message(generated: dict[str, str]) -> None:
    text = generated["events.md"]
    for topic in topics.all_topics():
        assert f"## {topic}\n" in text, topic
    for type_name, model in contract_types().items():
        assert f"### {type_name}\n" in text, type_name
        kind = "Command" if issubclass(model, Command) else "Event"
        assert f"{kind} on `" in text and f"key `{model.SUBJECT}`" in text
    assert text.count("```json") == len(contract_types())


def test_the_asyncapi_documents_give_the_schema_of_every_command(
        generated: dict[str, str]) -> None:
    for service in topics.SERVICES:
        spec = json.loads(generated[f"asyncapi/{service}.json"])
        assert spec == yaml.safe_load(generated[f"asyncapi/{service}.yaml"])
        assert spec["asyncapi"].startswith("3.")
        commands = {t.split(".", 1)[1] for t, m in contract_types().items()
                    if issubclass(m, Command) and m.service() == service}
        schemas = spec["components"]["schemas"]
        assert commands <= set(schemas), commands - set(schemas)
        inbound = [c for name, c in spec["channels"].items()
                   if c.get("address") == topics.commands(service) and "-inbound" in name]
        (channel,) = inbound
        (ref,) = channel["messages"].values()
        message = spec["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
        payload = message["payload"]
        refs = {r["$ref"].rsplit("/", 1)[-1]
                for r in payload.get("oneOf", [payload])}
        assert refs == commands
        for ref in _refs(spec):  # every schema reference resolves
            if ref.startswith("#/components/schemas/"):
                assert ref.rsplit("/", 1)[-1] in schemas, ref

def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
