"""Local mode: the platform's services as processes on one machine, and the controller and gateway sources
that take the cluster's place."""
