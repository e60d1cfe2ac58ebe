"""`mailhooks ingest`: a mail server's records read where the MTA leaves them (stdin, a
log file, the journal), turned into events by `mailhooks.sources`, and posted to the
running daemon by `feed`, batched and retried as each command's contract says (SPEC §8)."""

from typing import Final

# The sources, as `mailhooks ingest` and `mailhooks explain --from` name them.
SOURCES: Final = ("kumomta", "pmta", "postfix", "dsn")
