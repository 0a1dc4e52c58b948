"""The event store's PostgreSQL factory: eventsourcing's own, with the two
things its settings cannot express.

1. libpq parameters from the database URL (sslmode, sslrootcert, ...) go on
   every pooled connection, and an empty password is left out, so libpq finds
   it in its own sources (PGPASSWORD, .pgpass, PGPASSFILE).
2. The schema is quoted when the library looks up its composite types (it
   writes `schema.name` unquoted, so a mixed-case schema found no type and
   every write failed)."""

from __future__ import annotations

import json
from typing import Any

from eventsourcing import postgres
from eventsourcing.utils import Environment, EnvType
from psycopg import sql
from psycopg.types.composite import CompositeInfo, register_composite


class Datastore(postgres.PostgresDatastore):
    def register_type_adapters(self) -> None:
        """As the library's, with the schema and type name quoted as identifiers."""
        missing = [n for n in self.db_type_names if n not in self.psycopg_type_adapters]
        if not missing:
            return
        with self.get_connection() as conn:
            for name in missing:
                info = CompositeInfo.fetch(conn, sql.Identifier(self.schema, name))
                if info is None:
                    continue
                register_composite(info, conn)
                self.psycopg_type_adapters[name] = info
                self.psycopg_python_types[name] = info.python_type


class PostgresFactory(postgres.PostgresFactory):
    """Reads LIBPQ_PARAMS (a JSON object, from Database.eventsourcing_env)."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.datastore.__class__ = Datastore  # built by the base class; only a method differs
        kwargs: dict[str, Any] = self.datastore.pool.kwargs  # type: ignore[assignment]
        if not kwargs.get("password"):
            kwargs.pop("password", None)
        kwargs.update(json.loads(self.env.get("LIBPQ_PARAMS") or "{}"))
