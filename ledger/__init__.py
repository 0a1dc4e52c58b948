"""partner-ledger: an event-sourced deal and subscription ledger for a partner program."""

import os as _os

# The eventsourcing library reads these from the environment when first
# imported (every ledger module imports it after this package): TZINFO_TOPIC
# would change the zone of event timestamps (or, junk, crash the import) and
# SPHINX_BUILD how aggregate command methods behave. The ledger pins both.
for _name in ("TZINFO_TOPIC", "SPHINX_BUILD"):
    _os.environ.pop(_name, None)
