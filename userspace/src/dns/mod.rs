//! The slow path: zones, authoritative answers and the UDP/TCP servers.
