"""Value types shared by several services' contracts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PlanId = Literal["critical_illness", "elderly_cancer", "chronic_cancer"]
PLANS: tuple[PlanId, ...] = ("critical_illness", "elderly_cancer", "chronic_cancer")
Relation = Literal["self", "spouse", "child", "parent"]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, Field(max_length=2000)]


class Document(BaseModel):
    """A reference to evidence held elsewhere: never the document itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Annotated[str, Field(min_length=1, max_length=64)]
    sha256: Sha256
