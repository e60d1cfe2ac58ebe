"""[deliver] From the spool to the channels: `dispatcher` starts a `lane` per webhook; `retry`
decides what an outcome means; `message` builds what one request carries."""
