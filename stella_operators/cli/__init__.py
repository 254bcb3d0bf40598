"""The `stella` command line."""
