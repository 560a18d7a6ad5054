"""Load-based autoscaling: HAProxy stats → a decision per Marathon app → `PUT /v2/apps/{id}`."""
