"""Commands: the pydantic models at the boundary and one handler per type."""
