"""Opening the spool's database: the schema, its checks, and errors that say what to do.

Run on the spool's threads, never on the event loop.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

from mailhooks.spool.records import SpoolError, SpoolFull

SCHEMA_VERSION: Final = 2
MIN_SQLITE: Final = (3, 33, 0)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    event INTEGER NOT NULL REFERENCES events(id),
    webhook_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'dropped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    batch TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due
    ON deliveries (webhook_id, next_attempt_at) WHERE state = 'pending';
-- Partial indexes: a new (pending) delivery touches only the two it needs.
CREATE INDEX IF NOT EXISTS deliveries_history
    ON deliveries (updated_at) WHERE state IN ('delivered', 'dropped');
CREATE INDEX IF NOT EXISTS deliveries_failed
    ON deliveries (webhook_id) WHERE state = 'failed';
CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries (event);
-- What the daemon decided about a webhook, kept across restarts: since when it has only
-- failed, and whether it paused it (and which version of its file it paused).
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    failing_since REAL,
    paused_at REAL,
    paused_digest TEXT
);
"""

RECOVER: Final = (
    "mailhooks never replaces a spool by itself: stop the daemon, move the file (and its "
    "-wal and -shm files) aside for inspection, and start again with an empty spool"
)


# -- opening -------------------------------------------------------------------------------


def check_sqlite() -> None:
    """The spool's statements need UPDATE ... FROM (SQLite 3.33) and the JSON functions
    (built in since 3.38, and in nearly every build before)."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise SpoolError(
            f"the spool needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer; this Python "
            f"uses {sqlite3.sqlite_version}"
        )
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("SELECT json_extract('[1]', '$[0]')").fetchall()
    except sqlite3.OperationalError:
        raise SpoolError(
            f"the spool needs SQLite's JSON functions; this Python's SQLite "
            f"{sqlite3.sqlite_version} was built without them"
        ) from None
    finally:
        probe.close()


def _make_private(path: Path) -> None:
    """A spool made by an older version, or restored from a backup, may be readable by
    others: it holds recipients' addresses, so it is made 0600 as a new one is (and its
    -wal and -shm files, which SQLite would otherwise create with the same mode). Only
    the daemon's own files: another owner's, or a read-only file system, stay as they are,
    for the open to say what is wrong."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            info = file.stat()
            if info.st_mode & 0o077 and info.st_uid == os.geteuid():
                file.chmod(0o600)
        except OSError:
            continue


def open_writer(path: Path) -> sqlite3.Connection:
    """The writer's connection, the schema created or checked."""
    check_sqlite()
    existed = path.exists() and path.stat().st_size > 0
    if not path.exists():
        # 0600 from the start (SQLite gives its -wal and -shm files the same mode): the
        # spool holds recipients' addresses.
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            pass
        except OSError as error:
            raise SpoolError(f"spool {path} cannot be created: {error.strerror}") from None
    else:
        _make_private(path)
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            connection.close()
            raise SpoolError(
                f"spool {path} was written by a newer mailhooks (schema {version}, "
                f"this one knows {SCHEMA_VERSION}); run that version, or move the file "
                "away to start an empty spool"
            )
        if existed:
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                connection.close()
                raise SpoolError(f"spool {path} is damaged ({check}); {RECOVER}")
        else:
            connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        # Checkpoints keep the WAL near 4 MB; this hands the rest back afterwards.
        connection.execute("PRAGMA journal_size_limit = 8388608")
        if version == 1:
            # Schema 2: a failed batch keeps its identity across retries; webhooks' state.
            connection.execute("ALTER TABLE deliveries ADD COLUMN batch TEXT")
        connection.executescript(SCHEMA)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as error:
        raise open_error(path, error) from None
    return connection


def open_reader(path: Path) -> sqlite3.Connection:
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("PRAGMA query_only = ON")
    return reader


def open_error(path: Path, error: sqlite3.Error) -> SpoolError:
    """Why the spool cannot be opened, with advice that loses nothing: a spool that can't
    be written is not a damaged one."""
    text = str(error)
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return SpoolError(
            f"spool {path} cannot be written ({text}): check that the daemon's user owns "
            "it and its directory (and the -wal and -shm files beside it), and that the "
            "file system is not read-only; nothing was changed"
        )
    return SpoolError(f"spool {path} cannot be opened ({text}); {RECOVER}")


def disk_error(error: sqlite3.Error) -> SpoolError:
    text = str(error)
    if "full" in text or "disk" in text.lower():
        return SpoolFull(f"spool cannot grow: {text}")
    if "readonly" in text or "read-only" in text:
        return SpoolError(f"spool cannot be written: {text}")
    return SpoolError(f"spool write failed: {text}")
