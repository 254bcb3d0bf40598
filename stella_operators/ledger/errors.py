"""Errors the ledger raises (illegal status changes raise promotion.state.IllegalTransition)."""


class LedgerError(Exception):
    """A ledger operation was refused; the message says why."""


class NotFound(LedgerError, LookupError):
    """No row with that id."""
