//! Label and field selectors: parsing the query-string forms and matching objects.

mod field;
mod label;

pub use field::{FieldRequirement, FieldSelector};
pub use label::{LabelSelector, Operator, Requirement};
