"""Routers in front of target groups (blue-green today; canary steps next): one interface,
one module per router technology (haproxy.py). Plain Python."""

from stella_operators.routing.contract import Route, Router, RouterError

__all__ = ["Route", "Router", "RouterError"]
