"""The estate file's shared field types and base model (models.py and strategy_settings.py use them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

# Names reach command lines, container names, DAG ids and file paths: no shell metacharacters.
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
ConnId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$")]
LabelKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$")]
LabelValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:/@+-]{0,128}$")]
Repository = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.:\[\]-]+/[a-z0-9]+(?:[._/-][a-z0-9]+)*$")]
HostPort = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
