"""The rules outside systems own, written once and imported by the product, the stand-ins and the tests.

- `marathon_app`: Marathon's app definition (validation, 422 bodies, normalisation).
- `marathon_lb`: marathon-lb's labels (one declared table), its names and service ports, and the
  Consul service name of a Marathon app.
- `chronos_schedule`: Chronos's ISO 8601 repeating schedules.
- `consul_meta`: the Meta keys of the registrations the registrator writes and the renderer reads.

The ground floor: these modules import only the standard library and other `wharf` modules, never a
room or the dev cluster.
"""
