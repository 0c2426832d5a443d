//! Benchmark harness: dataset generators and peer runners.

pub mod repo_limits;
