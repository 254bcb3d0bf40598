"""Deployment: the generic two-phase engine over targets of any type."""

from stella_operators.deploy.engine import DeploymentOutcome, TargetOutcome, run_deployment

__all__ = ["DeploymentOutcome", "TargetOutcome", "run_deployment"]
