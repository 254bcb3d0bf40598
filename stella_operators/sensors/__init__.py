"""Sensors: wait for a human or a resource without holding a worker slot (deferrable)."""
