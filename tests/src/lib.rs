//! Harness for the end-to-end tests: starts the real processes and tools they talk to.
