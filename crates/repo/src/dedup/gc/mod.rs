//! Garbage collection: forget (retention policies) and two-phase prune that is safe against
//! concurrent writers (docs/FORMAT.md §7).

mod list;

pub use list::{GcList, gc_key, load_condemned, load_gc_lists};
