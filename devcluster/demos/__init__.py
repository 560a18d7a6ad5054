"""The steps of `make demo`, one module per room, each run against a running dev cluster."""
