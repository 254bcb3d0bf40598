"""Triggers: async waiting only, serializable kwargs, no side effects, one terminal event."""
