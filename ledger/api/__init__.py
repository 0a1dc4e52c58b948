"""The HTTP API (`ledger serve`): see app.py."""
