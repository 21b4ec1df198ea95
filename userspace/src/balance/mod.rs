//! The balancing methods: pure functions from (pool, metrics, client) to a weighted answer set
//! with the trace of the decision.
