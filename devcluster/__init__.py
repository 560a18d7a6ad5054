"""The embedded single-machine dev cluster, above the product, and the steps of `make demo` (`demos/`)."""
