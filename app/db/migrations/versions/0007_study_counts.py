"""study counts: series/instance counts, the AI-draft flag and patient name words kept by the database;
worklist indexes

Revision ID: 0007_study_counts
Revises: 0006_import_integrity
Written by hand. The worklist showed and sorted by two correlated COUNT subqueries per study, so every
refresh touched every instance. The counts now live in `series.instance_count`, `study.series_count` and
`study.instance_count`, kept by triggers (SQLite: row triggers; PostgreSQL: statement triggers over the
transition tables, one UPDATE per statement however many rows it inserted), so any writer - the importer,
a network receiver, a delete from the worklist, a cascade - keeps them right. Instances count into their
series and series into their study, which stays exact whichever order a cascade deletes rows in. The same
way `study.has_ai_draft` follows `ai_draft`, and `patient_name_word` holds the words of each patient's
`name_search`, so a name typed in the worklist is an index range per word. Indexes cover every worklist
sort key followed by the study-time tie-break, the modality filter and case-insensitive prefixes of the
patient ID and accession (on PostgreSQL in collation "C", where a prefix is exactly a range).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_study_counts"
down_revision = "0006_import_integrity"
branch_labels = None
depends_on = None

# (name, table, columns): the worklist's ORDER BY <key>, study_time reads these in order, LIMIT stops early.
INDEXES = (
    ("ix_study_date_time", "study", ["study_date", "study_time"]),
    ("ix_study_images_time", "study", ["instance_count", "study_time"]),
    ("ix_study_series_time", "study", ["series_count", "study_time"]),
    ("ix_study_modalities_time", "study", ["modalities", "study_time"]),
    ("ix_study_description_time", "study", ["description", "study_time"]),
    ("ix_study_status_time", "study", ["report_status", "study_time"]),
    ("ix_study_accession_time", "study", ["accession", "study_time"]),
    ("ix_study_draft_time", "study", ["has_ai_draft", "study_time"]),
    ("ix_patient_name", "patient", ["name"]),
    ("ix_series_modality_study", "series", ["modality", "study_db_id"]),
)
# Replaced by the composite indexes above (their leading column).
DROPPED = (("ix_study_study_date", "study", ["study_date"]), ("ix_study_report_status", "study", ["report_status"]),
           ("ix_study_accession", "study", ["accession"]), ("ix_series_modality", "series", ["modality"]))

# Case-insensitive prefix search on IDs: the query compares the same expressions (app.db.queries).
EXPRESSION_INDEXES = (("ix_patient_id_key", "patient", "patient_id"), ("ix_study_accession_key", "study", "accession"))

# name_search split on spaces and '-' (as app.db.search_terms.name_words splits typed text) into a JSON array
# for json_each (SQLite has no split function and no CTEs in triggers); a name that still is not valid JSON
# (control characters) gets no words rather than failing its insert.
_SQLITE_WORDS_JSON = (r"""('["' || replace(replace(replace(replace(NEW.name_search, '\', '\\'), '"', '\"'), """
                      r"""' ', '","'), '-', '","') || '"]')""")
_SQLITE_INSERT_WORDS = (
    "INSERT OR IGNORE INTO patient_name_word (word, patient_db_id) SELECT DISTINCT substr(value, 1, 64), NEW.id "
    f"FROM json_each(CASE WHEN json_valid({_SQLITE_WORDS_JSON}) THEN {_SQLITE_WORDS_JSON} ELSE '[]' END) "
    "WHERE value <> '';"
)

SQLITE_TRIGGERS = (
    """CREATE TRIGGER instance_counts_insert AFTER INSERT ON instance BEGIN
         UPDATE series SET instance_count = instance_count + 1 WHERE id = NEW.series_db_id; END""",
    """CREATE TRIGGER instance_counts_delete AFTER DELETE ON instance BEGIN
         UPDATE series SET instance_count = instance_count - 1 WHERE id = OLD.series_db_id; END""",
    """CREATE TRIGGER instance_counts_move AFTER UPDATE OF series_db_id ON instance
         WHEN OLD.series_db_id IS NOT NEW.series_db_id BEGIN
         UPDATE series SET instance_count = instance_count - 1 WHERE id = OLD.series_db_id;
         UPDATE series SET instance_count = instance_count + 1 WHERE id = NEW.series_db_id; END""",
    """CREATE TRIGGER series_counts_insert AFTER INSERT ON series BEGIN
         UPDATE study SET series_count = series_count + 1, instance_count = instance_count + NEW.instance_count
         WHERE id = NEW.study_db_id; END""",
    """CREATE TRIGGER series_counts_delete AFTER DELETE ON series BEGIN
         UPDATE study SET series_count = series_count - 1, instance_count = instance_count - OLD.instance_count
         WHERE id = OLD.study_db_id; END""",
    """CREATE TRIGGER series_counts_update AFTER UPDATE OF instance_count ON series
         WHEN OLD.study_db_id = NEW.study_db_id BEGIN
         UPDATE study SET instance_count = instance_count + NEW.instance_count - OLD.instance_count
         WHERE id = NEW.study_db_id; END""",
    """CREATE TRIGGER series_counts_move AFTER UPDATE OF study_db_id ON series
         WHEN OLD.study_db_id IS NOT NEW.study_db_id BEGIN
         UPDATE study SET series_count = series_count - 1, instance_count = instance_count - OLD.instance_count
         WHERE id = OLD.study_db_id;
         UPDATE study SET series_count = series_count + 1, instance_count = instance_count + NEW.instance_count
         WHERE id = NEW.study_db_id; END""",
)
SQLITE_TRIGGERS += (
    """CREATE TRIGGER ai_draft_flag_insert AFTER INSERT ON ai_draft BEGIN
         UPDATE study SET has_ai_draft = 1 WHERE id = NEW.study_db_id AND has_ai_draft = 0; END""",
    """CREATE TRIGGER ai_draft_flag_delete AFTER DELETE ON ai_draft BEGIN
         UPDATE study SET has_ai_draft = EXISTS (SELECT 1 FROM ai_draft WHERE study_db_id = OLD.study_db_id)
         WHERE id = OLD.study_db_id; END""",
    """CREATE TRIGGER ai_draft_flag_move AFTER UPDATE OF study_db_id ON ai_draft BEGIN
         UPDATE study SET has_ai_draft = EXISTS (SELECT 1 FROM ai_draft WHERE study_db_id = OLD.study_db_id)
         WHERE id = OLD.study_db_id;
         UPDATE study SET has_ai_draft = 1 WHERE id = NEW.study_db_id; END""",
    f"CREATE TRIGGER patient_words_insert AFTER INSERT ON patient BEGIN {_SQLITE_INSERT_WORDS} END",
    f"""CREATE TRIGGER patient_words_update AFTER UPDATE OF name_search ON patient
         WHEN OLD.name_search IS NOT NEW.name_search BEGIN
         DELETE FROM patient_name_word WHERE patient_db_id = OLD.id; {_SQLITE_INSERT_WORDS} END""",
)
SQLITE_TRIGGER_NAMES = ("instance_counts_insert", "instance_counts_delete", "instance_counts_move",
                        "series_counts_insert", "series_counts_delete", "series_counts_update",
                        "series_counts_move", "ai_draft_flag_insert", "ai_draft_flag_delete", "ai_draft_flag_move",
                        "patient_words_insert", "patient_words_update")

# PostgreSQL: one function per table; statement-level triggers see all affected rows as transition tables.
PG_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION radstation_instance_counts() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'INSERT' THEN
           UPDATE series s SET instance_count = s.instance_count + d.n
           FROM (SELECT series_db_id, count(*) AS n FROM new_rows GROUP BY series_db_id) d WHERE s.id = d.series_db_id;
         ELSIF TG_OP = 'DELETE' THEN
           UPDATE series s SET instance_count = s.instance_count - d.n
           FROM (SELECT series_db_id, count(*) AS n FROM old_rows GROUP BY series_db_id) d WHERE s.id = d.series_db_id;
         ELSE  -- UPDATE: only instances moved to another series change counts
           UPDATE series s SET instance_count = s.instance_count + d.n
           FROM (SELECT series_db_id, sum(n) AS n FROM (
                   SELECT o.series_db_id, -1 AS n FROM old_rows o JOIN new_rows w ON w.id = o.id
                   WHERE o.series_db_id <> w.series_db_id
                   UNION ALL
                   SELECT w.series_db_id, 1 FROM old_rows o JOIN new_rows w ON w.id = o.id
                   WHERE o.series_db_id <> w.series_db_id) x GROUP BY series_db_id) d
           WHERE s.id = d.series_db_id AND d.n <> 0;
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE OR REPLACE FUNCTION radstation_series_counts() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'INSERT' THEN
           UPDATE study t SET series_count = t.series_count + d.n, instance_count = t.instance_count + d.i
           FROM (SELECT study_db_id, count(*) AS n, sum(instance_count) AS i FROM new_rows GROUP BY study_db_id) d
           WHERE t.id = d.study_db_id;
         ELSIF TG_OP = 'DELETE' THEN
           UPDATE study t SET series_count = t.series_count - d.n, instance_count = t.instance_count - d.i
           FROM (SELECT study_db_id, count(*) AS n, sum(instance_count) AS i FROM old_rows GROUP BY study_db_id) d
           WHERE t.id = d.study_db_id;
         ELSE  -- UPDATE: series whose instance count changed or that moved to another study
           UPDATE study t SET series_count = t.series_count + d.n, instance_count = t.instance_count + d.i
           FROM (SELECT study_db_id, sum(n) AS n, sum(i) AS i FROM (
                   SELECT o.study_db_id, -1 AS n, -o.instance_count AS i FROM old_rows o JOIN new_rows w ON w.id = o.id
                   WHERE o.study_db_id <> w.study_db_id OR o.instance_count <> w.instance_count
                   UNION ALL
                   SELECT w.study_db_id, 1, w.instance_count FROM old_rows o JOIN new_rows w ON w.id = o.id
                   WHERE o.study_db_id <> w.study_db_id OR o.instance_count <> w.instance_count) x
                 GROUP BY study_db_id) d
           WHERE t.id = d.study_db_id AND (d.n <> 0 OR d.i <> 0);
         END IF;
         RETURN NULL;
       END $$""",
)
PG_FUNCTIONS += (
    """CREATE OR REPLACE FUNCTION radstation_ai_draft_flag() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP IN ('DELETE', 'UPDATE') THEN
           UPDATE study t SET has_ai_draft = EXISTS (SELECT 1 FROM ai_draft a WHERE a.study_db_id = t.id)
           WHERE t.id IN (SELECT study_db_id FROM old_rows);
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
           UPDATE study t SET has_ai_draft = true WHERE t.id IN (SELECT study_db_id FROM new_rows) AND NOT t.has_ai_draft;
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE OR REPLACE FUNCTION radstation_patient_words() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'UPDATE' THEN
           DELETE FROM patient_name_word WHERE patient_db_id = OLD.id;
         END IF;
         INSERT INTO patient_name_word (word, patient_db_id)
           SELECT DISTINCT left(w, 64), NEW.id FROM regexp_split_to_table(NEW.name_search, '[ -]+') AS w WHERE w <> ''
           ON CONFLICT DO NOTHING;
         RETURN NULL;
       END $$""",
)
PG_TRIGGERS = tuple(
    (f"{table}_counts_{op_name.lower()}", table,
     f"AFTER {op_name} ON {table} REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION radstation_{table}_counts()")
    for table in ("instance", "series")
    for op_name, refs in (("INSERT", "NEW TABLE AS new_rows"), ("DELETE", "OLD TABLE AS old_rows"),
                          ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"))
) + tuple(
    (f"ai_draft_flag_{op_name.lower()}", "ai_draft",
     f"AFTER {op_name} ON ai_draft REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION radstation_ai_draft_flag()")
    for op_name, refs in (("INSERT", "NEW TABLE AS new_rows"), ("DELETE", "OLD TABLE AS old_rows"),
                          ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"))
) + (
    ("patient_words_insert", "patient",
     "AFTER INSERT ON patient FOR EACH ROW EXECUTE FUNCTION radstation_patient_words()"),
    ("patient_words_update", "patient", "AFTER UPDATE OF name_search ON patient FOR EACH ROW "
     "WHEN (OLD.name_search IS DISTINCT FROM NEW.name_search) EXECUTE FUNCTION radstation_patient_words()"),
)
PG_FUNCTION_NAMES = ("radstation_instance_counts", "radstation_series_counts", "radstation_ai_draft_flag",
                     "radstation_patient_words")

BACKFILL = (
    "UPDATE study SET has_ai_draft = EXISTS (SELECT 1 FROM ai_draft WHERE ai_draft.study_db_id = study.id)",
    "UPDATE series SET instance_count = (SELECT count(*) FROM instance WHERE instance.series_db_id = series.id)",
    """UPDATE study SET
         series_count = (SELECT count(*) FROM series WHERE series.study_db_id = study.id),
         instance_count = (SELECT coalesce(sum(instance_count), 0) FROM series WHERE series.study_db_id = study.id)""",
)


def upgrade() -> None:
    # Plain ADD COLUMN (no table copy on SQLite), so other revisions' triggers on these tables stay.
    op.add_column("series", sa.Column("instance_count", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("study", sa.Column("series_count", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("study", sa.Column("instance_count", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("study", sa.Column("has_ai_draft", sa.Boolean(), nullable=False, server_default=sa.false()))
    dialect = op.get_bind().dialect.name
    word = sa.String(64, collation="C") if dialect == "postgresql" else sa.String(64)
    op.create_table("patient_name_word",
                    sa.Column("word", word, nullable=False),
                    sa.Column("patient_db_id", sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(["patient_db_id"], ["patient.id"], ondelete="CASCADE",
                                            name=op.f("fk_patient_name_word_patient_db_id_patient")),
                    sa.PrimaryKeyConstraint("word", "patient_db_id", name=op.f("pk_patient_name_word")))
    op.create_index("ix_patient_name_word_patient", "patient_name_word", ["patient_db_id"])
    for sql in BACKFILL:  # before the triggers, which would otherwise count the backfill twice
        op.execute(sql)
    if dialect == "sqlite":
        op.execute(_SQLITE_INSERT_WORDS.replace("NEW.", "patient.").replace("FROM json_each", "FROM patient, json_each")
                   .rstrip(";"))
    elif dialect == "postgresql":
        op.execute("INSERT INTO patient_name_word (word, patient_db_id) SELECT DISTINCT left(w, 64), p.id "
                   "FROM patient p, regexp_split_to_table(p.name_search, '[ -]+') AS w WHERE w <> ''")
    if dialect == "sqlite":
        for sql in SQLITE_TRIGGERS:
            op.execute(sql)
    elif dialect == "postgresql":
        for sql in PG_FUNCTIONS:
            op.execute(sql)
        for name, _table, definition in PG_TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} {definition}")
    else:
        raise NotImplementedError(f"study counts need triggers written for {dialect}; SQLite and PostgreSQL have them")
    for name, table, columns in DROPPED:
        op.drop_index(name, table_name=table)
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    for name, table, column in EXPRESSION_INDEXES:
        key = f'(upper({column}) COLLATE "C")' if dialect == "postgresql" else f"upper({column})"
        op.execute(f"CREATE INDEX {name} ON {table} ({key})")
    if dialect == "postgresql":
        op.execute("ANALYZE study")
        op.execute("ANALYZE series")
        op.execute("ANALYZE patient")
        op.execute("ANALYZE patient_name_word")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table)
    for name, table, _column in EXPRESSION_INDEXES:
        op.drop_index(name, table_name=table)
    for name, table, columns in DROPPED:
        op.create_index(name, table, columns)
    if dialect == "sqlite":
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    elif dialect == "postgresql":
        for name, table, _definition in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in PG_FUNCTION_NAMES:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_index("ix_patient_name_word_patient", table_name="patient_name_word")
    op.drop_table("patient_name_word")
    op.drop_column("study", "has_ai_draft")
    op.drop_column("study", "instance_count")
    op.drop_column("study", "series_count")
    op.drop_column("series", "instance_count")
