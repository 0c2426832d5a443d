//! `cairnctl` commands, one module each.

pub mod backup;
pub mod convert;
pub mod crds;
pub mod quickstart;
pub mod repo;
pub mod restore;
pub mod schedule;
pub mod up;
pub mod validate;
pub mod version;
