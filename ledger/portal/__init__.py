"""The partner portal: server-rendered HTML pages over the ledger's service layer (see routes.py)."""
