"""The autocomplete stays an index range with 10,000 repositories: no sequential scan of
``repositories`` for a prefix of a full name or of a name without its namespace."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.auth.access import ANONYMOUS, Principal
from dtr.images.search import _namespaces, _repositories


async def test_search_uses_the_indexes(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO accounts (name, is_org, full_name, email, is_admin, is_active, "
                                "is_imported, credential_gen) SELECT 'ns' || i, true, '', '', false, true, false, 0 "
                                "FROM generate_series(0, 99) i"))
        await conn.execute(text("INSERT INTO repositories (name) SELECT 'ns' || (i % 100) || '/repo' || i "
                                "FROM generate_series(1, 10000) i"))
        await conn.execute(text("ANALYZE"))
    bob = Principal(name="bob", id=12345)
    async with engine.connect() as conn:
        for p in (bob, ANONYMOUS):
            for q in ("ns42", "repo123", "ns42/repo4"):
                for stmt in (_repositories(p, q, 50), _namespaces(p, q, 50)):
                    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
                    plan = "\n".join(r[0] for r in await conn.execute(text("EXPLAIN " + sql)))
                    assert "Seq Scan on repositories" not in plan, f"{q}:\n{sql}\n{plan}"
