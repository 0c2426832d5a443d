//! Real databases for the round-trip tests (`tests/db_*.rs`): PostgreSQL, Redis and MariaDB from
//! Debian's packages running as localkube pods (their templates are `tests/manifests/db/*-pod.yaml`),
//! clients that fill them and fingerprint their contents from the host, the KubeBlocks fixtures
//! they are backed up with (`$CAIRN_KUBEBLOCKS_FIXTURES`), and the timing of each round trip.

pub mod addons;
pub mod deploy;
pub mod fixtures;
pub mod host;
pub mod mariadb;
pub mod postgres;
pub mod redis;
pub mod round_trip;
