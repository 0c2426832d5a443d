//! `cairnctl` commands, one module each.

pub mod convert;
pub mod crds;
pub mod repo;
pub mod up;
pub mod validate;
