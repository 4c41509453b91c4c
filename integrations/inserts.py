"""Insert a row unless a unique key is taken, in one statement (webhook intake's hot path)."""

from __future__ import annotations

from django.db import connections, models, router
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery


def insert_unless_taken(instance: models.Model) -> bool:
    """`INSERT ... ON CONFLICT DO NOTHING RETURNING pk` (SQLite: `INSERT OR IGNORE`).

    True when the row went in (the instance gets its primary key), False when a unique
    constraint already held its key. One statement, where `create()` in a savepoint to catch
    the IntegrityError takes three; Django's `bulk_create(ignore_conflicts=True)` writes the
    same insert but cannot say whether the row went in. Other integrity errors (a foreign key
    to a deleted row) still raise IntegrityError.
    """
    model = type(instance)
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key or instance.pk is not None]
    query = InsertQuery(model, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [instance])
    db = router.db_for_write(model)
    connection = connections[db]
    [(sql, params)] = query.get_compiler(using=db).as_sql()
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            cursor.execute(f"{sql} RETURNING {connection.ops.quote_name(meta.pk.column)}", params)
            row = cursor.fetchone()
            pk = row[0] if row else None
        else:  # SQLite before 3.35
            cursor.execute(sql, params)
            pk = None
            if cursor.rowcount == 1:
                pk = connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
    if pk is None:
        return False
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = db
    return True
