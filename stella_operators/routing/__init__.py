"""Routers in front of target groups (blue-green, canary steps): one interface, one module per
router technology (haproxy.py; none.py: no router, the share of targets updated). Plain Python."""

from stella_operators.routing.contract import Route, Router, RouterError

__all__ = ["Route", "Router", "RouterError"]
