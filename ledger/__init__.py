"""partner-ledger: an event-sourced deal and subscription ledger for a partner program."""
