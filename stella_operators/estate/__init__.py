"""The estate file: apps, components, environments, targets; validated, with clear errors."""

from stella_operators.estate.errors import EstateError, Problem
from stella_operators.estate.loader import load_estate, parse_estate
from stella_operators.estate.models import App, Component, Environment, Estate, Registry, TargetConfig

__all__ = [
    "App", "Component", "Environment", "Estate", "EstateError", "Problem", "Registry", "TargetConfig",
    "load_estate", "parse_estate",
]
