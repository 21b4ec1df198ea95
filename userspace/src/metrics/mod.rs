//! Where the balancer's metrics come from: the metrics file (agents arrive in issue 5).
