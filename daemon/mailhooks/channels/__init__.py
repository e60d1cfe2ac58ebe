"""[out] Where events go: one module per channel type, all behind `base.Sender`."""
