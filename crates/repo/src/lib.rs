//! Cairn's repository engine (docs/FORMAT.md).
