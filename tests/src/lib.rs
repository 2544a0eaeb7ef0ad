//! Shared harness for integration tests: real tgtd instances on loopback.
