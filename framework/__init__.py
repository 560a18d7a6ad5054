"""wharf's own Mesos framework: one-off and batch container tasks, with failover and no double launches."""
