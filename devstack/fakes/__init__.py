"""Faithful fakes of HTTP APIs that have no server on this machine (Nomad, WS-Management).

Each is a real HTTP server on a port, written from the service's API documentation, serving only
the endpoints stella uses. Tests that use one say so in their docstring.
"""
