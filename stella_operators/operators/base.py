"""Base for stella operators: the estate, the ledger, the signing key and the target factory."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from stella_operators.estate.loader import load_estate
from stella_operators.estate.models import Estate, TargetConfig

if TYPE_CHECKING:
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import FullLedger
    from stella_operators.targets.contract import Target


def actor_of(context: Any) -> str:
    """Who asked: the user who triggered the run (Airflow auth), else the scheduler."""
    run = context.get("dag_run")
    user = getattr(run, "triggering_user_name", None) if run is not None else None
    return user or "airflow:scheduler"


def build_target(target: TargetConfig) -> Target:
    """Instantiate a Target through its type (targets/registry.py)."""
    from stella_operators.targets.registry import build_target as build

    try:
        return build(target)
    except KeyError as exc:
        raise ValueError(f"target {target.name}: {exc.args[0]}") from None


class StellaBaseOperator(BaseOperator):
    """Common wiring. Subclasses do their work through stella_operators' plain-Python services.

    :param estate_path: path of the estate YAML file (templated).
    :param ledger_conn_id: Airflow Connection of the ledger (default ``stella_ledger``).
    :param signing_key_conn_id: Airflow Connection of the evidence signing key.
    """

    template_fields: tuple[str, ...] = ("estate_path",)
    ui_color = "#e8f0fe"

    def __init__(self, *, estate_path: str, ledger_conn_id: str | None = None,
                 signing_key_conn_id: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.estate_path = estate_path
        self.ledger_conn_id = ledger_conn_id
        self.signing_key_conn_id = signing_key_conn_id

    @cached_property
    def estate(self) -> Estate:
        return load_estate(self.estate_path)

    @cached_property
    def ledger(self) -> FullLedger:
        from stella_operators.hooks.ledger import LedgerHook

        return LedgerHook(self.ledger_conn_id).get_conn()

    @cached_property
    def signing_key(self) -> SigningKey:
        from stella_operators.hooks.signing import SigningKeyHook

        return SigningKeyHook(self.signing_key_conn_id).get_conn()


class PromotionStepOperator(StellaBaseOperator):
    """A step of a promotion DAG: bound to one app and one environment of the estate."""

    def __init__(self, *, app: str, environment: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.app = app
        self.environment = environment
