"""The `ledger` command line's entry point (`ledger = "cli:main"`). The
sub-commands live in `ledger/commandline/`, one module per group; see
`ledger/commandline/main.py` for the exit statuses."""

from ledger.commandline.main import main
from ledger.commandline.submit import SUBMIT_CHUNK
from ledger.render import dump

__all__ = ["main", "SUBMIT_CHUNK", "dump"]  # the last two for tests: the chunk size, the JSON printed

if __name__ == "__main__":  # pragma: no cover
    main()
