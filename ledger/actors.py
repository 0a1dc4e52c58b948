"""The kinds of actor the ledger knows: a partner (`partner:<id>`) and the
vendor's roles. Names only (no imports), so the command line's help can show
them without loading anything; `ledger/authority.py` says what each may do."""

PARTNER, MANAGER, FINANCE, SYSTEM = "partner", "vendor:manager", "vendor:finance", "system"
VENDOR_ROLES = (MANAGER, FINANCE, SYSTEM)
ACTOR_KINDS = (PARTNER, *VENDOR_ROLES)
# How an actor is written, in words (help texts and errors).
ACTOR_USAGE = f"{PARTNER}:<id>, {MANAGER}, {FINANCE} or {SYSTEM}"
