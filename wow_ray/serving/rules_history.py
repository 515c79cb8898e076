"""Every rules file deployed to the agents, kept in the sessions database.

A deployment is stored after Serve accepted it: who deployed it, when, the version id the agents
report (``<file version>@<digest>``, what each turn's trace records as ``rules_version``), the
version it replaced, the file's SHA-256 and the file text itself, so any earlier version can be
read again (and deployed again). Its own table beside the sessions' (``rules_deployments``),
created on first use; nothing else reads or writes it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, insert, select
from sqlalchemy.engine import Engine

metadata = MetaData()
rules_deployments = Table(
    "rules_deployments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scenario", String(64), nullable=False, index=True),
    Column("version", String(128), nullable=False),
    Column("previous_version", String(128), nullable=False, default=""),
    Column("sha256", String(64), nullable=False),
    Column("by", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("text", Text, nullable=False),
)


class RulesDeployment(BaseModel):
    """One rules file deployed to the agents (a row of ``rules_deployments``)."""

    id: int
    scenario: str
    version: str = Field(description="The version id the agents report with these rules.")
    previous_version: str = Field(description="The version in force before.")
    sha256: str = Field(description="SHA-256 of the file text.")
    by: str = Field(description="The name of the key that deployed it.")
    at: datetime
    text: str


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class RulesHistory:
    """The deployments of one database (``SessionStore.engine``), newest first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    def record(self, scenario: str, *, version: str, previous_version: str, by: str,
               text: str) -> RulesDeployment:
        row = {"scenario": scenario, "version": version, "previous_version": previous_version,
               "sha256": text_sha256(text), "by": by, "at": datetime.now(UTC), "text": text}
        with self.engine.begin() as conn:
            new_id = conn.execute(insert(rules_deployments).values(**row)).inserted_primary_key[0]
        return RulesDeployment(id=new_id, **row)

    def list(self, scenario: str, limit: int = 50) -> list[RulesDeployment]:
        query = (select(rules_deployments).where(rules_deployments.c.scenario == scenario)
                 .order_by(rules_deployments.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [RulesDeployment.model_validate(r._asdict()) for r in conn.execute(query)]

    def get(self, deployment_id: int) -> RulesDeployment | None:
        query = select(rules_deployments).where(rules_deployments.c.id == deployment_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return RulesDeployment.model_validate(row._asdict()) if row is not None else None
