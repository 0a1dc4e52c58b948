"""How an event's state becomes the stored bytes and back: the library's JSON
format (`eventsourcing.persistence.JSONTranscoder`: compact, UTF-8, a
non-JSON value as {"_type_": name, "_data_": text}), written and read with
orjson, a C library several times faster than the standard `json` module.

The format is the same: bytes written by the standard-library transcoder
(every ledger before this one) decode here unchanged, and for the values the
ledger stores this one writes the same bytes (tests/test_transcoder.py), so
the audit chain, which hashes the stored bytes, verifies old and new events
alike. A value orjson would write differently (an integer beyond 64 bits, a
string with a lone surrogate) or cannot write goes through the standard
library's encoder as before, with its errors; bytes orjson would read
differently (an integer beyond 64 bits becomes a float there) or cannot read
go through the standard library's decoder. The ledger never stores a float
(money is Decimal), so a float read back means exactly that case."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding

# datetime and date go to `default` (the library's transcodings), not orjson's own format.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class LedgerTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        """The JSON bytes of an event's state (a dict)."""
        try:
            return orjson.dumps(obj, default=self._encode_obj, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().encode(obj)

    def decode(self, data: bytes) -> Any:
        """The state an event's stored bytes hold, with its transcoded values
        (datetimes, dates, decimals) restored."""
        try:
            return self._revive(orjson.loads(data))
        except (orjson.JSONDecodeError, _Inexact):
            return super().decode(data)

    def _revive(self, obj: Any) -> Any:
        # Innermost first, as json's object_hook does; a transcoded value whose
        # data is text (all of the ledger's) is decoded straight away.
        names = self.names
        items = obj.items() if type(obj) is dict else enumerate(obj)
        for key, value in items:
            kind = type(value)
            if kind is dict:
                data = value.get("_data_") if len(value) == 2 else None
                if type(data) is str and value.get("_type_") in names:
                    obj[key] = names[value["_type_"]].decode(data)
                else:
                    obj[key] = self._revive(value)
            elif kind is list:
                obj[key] = self._revive(value)
            elif kind is float:
                raise _Inexact
        return self._decode_obj(obj) if type(obj) is dict and len(obj) == 2 else obj


class _Inexact(Exception):
    """orjson read a number as a float: the standard library reads it exactly."""
