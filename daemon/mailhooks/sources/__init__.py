"""[in] Events from the mail servers operators run (SPEC §8): one module per source."""
