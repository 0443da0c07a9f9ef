"""``/models``: the installed AI models and their cards (no patient data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import PlainTextResponse

from models import ModelError, ModelRegistry, RegisteredModel
from soi.api.deps import CallerDep, RuntimeDep
from soi.api.problems import Problem, problem_responses
from soi.schemas import ModelOut, ModelTargetOut, TrainingDataOut

router = APIRouter(prefix="/models", tags=["models"])

_NAME = r"^[a-z][a-z0-9-]{0,63}$"
_VERSION = r"^[0-9A-Za-z.+-]{1,64}$"


def _model_out(model: RegisteredModel, *, active: bool) -> ModelOut:
    manifest = model.manifest
    return ModelOut(
        name=manifest.name,
        version=manifest.version,
        active=active,
        task=manifest.task,
        intended_use=manifest.intended_use,
        training_data=TrainingDataOut(
            description=manifest.training_data.description,
            synthetic=manifest.training_data.synthetic,
        ),
        targets=[
            ModelTargetOut(
                key=target.key,
                display={"en": target.display_en, "vi": target.display_vi},
                threshold=target.threshold,
            )
            for target in manifest.targets
        ],
        created_at=manifest.created_at,
        card=f"/models/{manifest.name}/{manifest.version}/card",
    )


def _installed(registry: ModelRegistry) -> list[ModelOut]:
    found: list[ModelOut] = []
    for name in registry.list():
        try:
            active = registry.active(name)
            versions = registry.versions(name)
        except ModelError:
            continue
        current = active or (versions[-1] if versions else None)
        for version in versions:
            try:
                model = registry.get(name, version, verify=False)
            except ModelError:
                continue
            found.append(_model_out(model, active=version == current))
    return found


@router.get("", response_model=list[ModelOut], responses=problem_responses(401))
def list_models(runtime: RuntimeDep, caller: CallerDep) -> list[ModelOut]:
    """The installed model versions: what each reads, on what data it was trained
    (``training_data.synthetic``: a model trained on synthetic data only has no measured
    clinical performance), and a link to its card."""
    return _installed(runtime.registry)


@router.get(
    "/{name}/{version}/card",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/markdown": {}}, "description": "The model card (Markdown)"},
        **problem_responses(401, 404),
    },
)
def model_card(
    runtime: RuntimeDep,
    caller: CallerDep,
    name: Annotated[str, Path(pattern=_NAME)],
    version: Annotated[str, Path(pattern=_VERSION)],
) -> PlainTextResponse:
    """The model card of one model version, as Markdown."""
    try:
        model = runtime.registry.get(name, version, verify=False)
        text = model.card_path.read_text(encoding="utf-8")
    except (ModelError, OSError):
        raise Problem(404, "Model not found", f"no model card for {name} {version}") from None
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
