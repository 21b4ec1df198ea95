//! Network namespaces for end-to-end tests (filled in below).
