"""Watching which rows a transaction locks, in what order, to check the lock order of bookings/models.py.

`recorded_lock_order(connection)` listens to every statement on the test's connection (all the sessions of a
test run on it: the requests', the eager tasks') and to the sessions' transaction ends. Within one
transaction, each statement that locks rows of a ranked table (`SELECT ... FOR ...`, `UPDATE`, `DELETE`) must
not come after a lock on a table of a higher rank, unless the transaction holds that table's locks already
(the mentor's calendar bumped at commit, after its bookings, was locked first). Explicit locks must be
`FOR NO KEY UPDATE` (or `SKIP LOCKED`, which never waits): a plain `FOR UPDATE` also waits for every
transaction inserting a row that references the locked one, which is how the deadlock of issue 11 happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

# The lock order of marketplace/bookings/models.py; other tables come last.
RANKS = {"stripe_events": 1, "mentor_profiles": 2, "users": 3, "bookings": 4}
LAST = 5
_LOCK_CLAUSE = re.compile(r"\bFOR (NO KEY UPDATE|UPDATE|SHARE|KEY SHARE)(?: OF (\w+))?", re.IGNORECASE)
_FROM = re.compile(r"\bFROM\s+(\w+)", re.IGNORECASE)
_WRITE = re.compile(r"^\s*(?:UPDATE\s+(\w+)|DELETE\s+FROM\s+(\w+))", re.IGNORECASE)


@dataclass
class LockOrder:
    violations: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)  # this transaction's ranked tables, in lock order
    seen: list[list[str]] = field(default_factory=list)  # every transaction's, for the test to inspect

    def statement(self, sql: str) -> None:
        table = self._locked_table(sql)
        if table is None:
            return
        rank = RANKS.get(table, LAST)
        highest = max((RANKS.get(t, LAST) for t in self.locked), default=0)
        if table not in self.locked and rank < highest:
            self.violations.append(f"{table} locked after {self.locked}: {' '.join(sql.split())[:200]}")
        if table not in self.locked:
            self.locked.append(table)

    def _locked_table(self, sql: str) -> str | None:
        write = _WRITE.match(sql)
        if write:
            return (write.group(1) or write.group(2)).lower()
        clause = _LOCK_CLAUSE.search(sql)
        if clause is None or "SKIP LOCKED" in sql.upper():
            return None
        mode, of = clause.group(1).upper(), clause.group(2)
        from_table = _FROM.search(sql)
        table = (of or (from_table.group(1) if from_table else "?")).lower()
        if mode != "NO KEY UPDATE":
            self.violations.append(f"FOR {mode} on {table} (take FOR NO KEY UPDATE): {sql[:200]}")
        return table

    def transaction_ended(self) -> None:
        if self.locked:
            self.seen.append(self.locked)
        self.locked = []


@contextmanager
def recorded_lock_order(connection: Connection) -> Iterator[LockOrder]:
    order = LockOrder()

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        order.statement(statement)

    def on_end(_session: Session, transaction: Any) -> None:
        if transaction.parent is None:
            order.transaction_ended()

    event.listen(connection, "before_cursor_execute", on_statement)
    event.listen(Session, "after_transaction_end", on_end)
    try:
        yield order
    finally:
        event.remove(connection, "before_cursor_execute", on_statement)
        event.remove(Session, "after_transaction_end", on_end)
        order.transaction_ended()
