"""`mailhooks ingest`: a mail server's records read where the MTA leaves them (stdin, a
log file, the journal), turned into events by `mailhooks.sources`, and posted to the
running daemon by `feed`, batched and retried as each command's contract says (SPEC §8)."""
