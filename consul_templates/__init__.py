"""Consul catalog -> Jinja -> HAProxy and nginx: validated, swapped in, applied without a dropped request.

The pipeline, each step its own module:
snapshot (frozen catalog) -> safe (drop what could inject) -> routes (marathon-lb labels and names)
-> render (sandboxed Jinja) -> writer (compare, validate, rename) -> apply (Runtime API or reload),
with the watch loop (blocking queries, quiescence) apart in `watch` and `runner`.
"""
