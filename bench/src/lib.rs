//! Benchmark harness: dataset generators and peer runners.
