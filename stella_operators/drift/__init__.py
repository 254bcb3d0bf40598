"""Drift: does every target still run what the ledger last verified in its environment?"""
