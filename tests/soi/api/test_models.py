"""``/models``: the installed models, what they were trained on, and their cards."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from models import ModelRegistry
from soi.runtime import Runtime
from tests.support.auth import bearer


def test_models_say_on_what_data_they_were_trained(
    client: TestClient,
    runtime: Runtime,
    person: Callable[..., str],
    token_of: Callable[[str], str],
) -> None:
    person("lan", "technician", "LOCAL")
    response = client.get("/models", headers=bearer(token_of("lan")))
    assert response.status_code == 200, response.text
    models = {(m["name"], m["version"]): m for m in response.json()}
    registry = ModelRegistry(runtime.settings.models_dir)
    shipped = registry.get("cxr", verify=False).manifest
    cxr = models[("cxr", shipped.version)]
    assert cxr["active"] is True
    assert cxr["training_data"] == {
        "description": shipped.training_data.description,
        "synthetic": shipped.training_data.synthetic,
    }
    # The shipped model is trained on phantoms, and says so.
    assert cxr["training_data"]["synthetic"] is True
    assert [t["key"] for t in cxr["targets"]] == [t.key for t in shipped.targets]
    assert cxr["targets"][0]["display"]["vi"] == shipped.targets[0].display_vi

    card = client.get(cxr["card"], headers=bearer(token_of("lan")))
    assert card.status_code == 200, card.text
    assert card.headers["content-type"].startswith("text/markdown")
    assert card.text == (
        registry.get("cxr", shipped.version, verify=False).card_path.read_text("utf-8")
    )


def test_unknown_model_and_no_credentials(
    client: TestClient, person: Callable[..., str], token_of: Callable[[str], str]
) -> None:
    assert client.get("/models").status_code == 401
    person("ris", "integration")
    missing = client.get("/models/cxr/9.9.9/card", headers=bearer(token_of("ris")))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    bad = client.get("/models/..%2Fetc/1.0.0/card", headers=bearer(token_of("ris")))
    assert bad.status_code in (404, 422)
