"""Operators: templated parameters, validation, then a call into the domain services."""
