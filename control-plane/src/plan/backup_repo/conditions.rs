//! Status conditions kept the way Kubernetes' `meta.SetStatusCondition` keeps them: a condition's
//! `lastTransitionTime` moves only when its status does; reason, message and observed generation
//! follow every update. Pure, so planners can compute a whole conditions list from the old one.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    /// The text Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// One condition as a planner decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<'a> {
    pub type_: &'a str,
    pub status: Status,
    pub reason: &'a str,
    pub message: String,
}

/// The condition of that type, if present.
pub fn find<'c>(conditions: &'c [Condition], type_: &str) -> Option<&'c Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of that type has the given status.
pub fn has_status(conditions: &[Condition], type_: &str, status: Status) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == status.as_str())
}

/// Sets a condition: added with `lastTransitionTime = now` when missing; when present, the
/// transition time changes only if the status changes. Returns whether the status changed (or
/// the condition is new), which is when a planner reports the transition.
pub fn set(
    conditions: &mut Vec<Condition>,
    update: Update<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == update.type_) {
        Some(existing) => {
            let transition = existing.status != update.status.as_str();
            if transition {
                existing.status = update.status.as_str().to_string();
                existing.last_transition_time = Time(now);
            }
            existing.reason = update.reason.to_string();
            existing.message = update.message;
            existing.observed_generation = generation;
            transition
        }
        None => {
            conditions.push(Condition {
                type_: update.type_.to_string(),
                status: update.status.as_str().to_string(),
                reason: update.reason.to_string(),
                message: update.message,
                observed_generation: generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn update(status: Status, reason: &'static str, message: &str) -> Update<'static> {
        Update {
            type_: "Ready",
            status,
            reason,
            message: message.to_string(),
        }
    }

    #[test]
    fn a_new_condition_starts_its_transition_now() {
        let mut list = Vec::new();
        assert!(set(
            &mut list,
            update(Status::True, "Ok", ""),
            Some(3),
            at(0)
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, "True");
        assert_eq!(list[0].reason, "Ok");
        assert_eq!(list[0].observed_generation, Some(3));
        assert_eq!(list[0].last_transition_time, Time(at(0)));
    }

    #[test]
    fn the_same_status_keeps_the_transition_time_but_takes_reason_and_message() {
        let mut list = Vec::new();
        set(
            &mut list,
            update(Status::Unknown, "A", "one"),
            Some(1),
            at(0),
        );
        let changed = set(
            &mut list,
            update(Status::Unknown, "B", "two"),
            Some(2),
            at(60),
        );
        assert!(!changed);
        assert_eq!(list[0].last_transition_time, Time(at(0)));
        assert_eq!(list[0].reason, "B");
        assert_eq!(list[0].message, "two");
        assert_eq!(list[0].observed_generation, Some(2));
    }

    #[test]
    fn a_status_change_moves_the_transition_time() {
        let mut list = Vec::new();
        set(&mut list, update(Status::Unknown, "A", ""), None, at(0));
        assert!(set(&mut list, update(Status::False, "A", ""), None, at(60)));
        assert_eq!(list[0].last_transition_time, Time(at(60)));
        assert!(has_status(&list, "Ready", Status::False));
        assert!(!has_status(&list, "Ready", Status::True));
        assert!(!has_status(&list, "Other", Status::False));
    }

    proptest::proptest! {
        #[test]
        fn the_transition_time_is_when_the_status_last_changed(
            statuses in proptest::collection::vec(0u8..3, 1..12)
        ) {
            let mut list = Vec::new();
            let mut last_change = None;
            let mut previous = None;
            for (i, s) in statuses.iter().enumerate() {
                let status = [Status::True, Status::False, Status::Unknown][usize::from(*s)];
                let changed = set(&mut list, update(status, "R", ""), None, at(i as i64));
                proptest::prop_assert_eq!(changed, previous != Some(status));
                if previous != Some(status) {
                    last_change = Some(at(i as i64));
                }
                previous = Some(status);
            }
            proptest::prop_assert_eq!(list.len(), 1);
            proptest::prop_assert_eq!(Some(list[0].last_transition_time.0), last_change);
        }
    }

    #[test]
    fn other_conditions_are_left_alone() {
        let mut list = Vec::new();
        set(&mut list, update(Status::True, "A", ""), None, at(0));
        set(
            &mut list,
            Update {
                type_: "Other",
                status: Status::False,
                reason: "B",
                message: String::new(),
            },
            None,
            at(5),
        );
        assert_eq!(list.len(), 2);
        assert_eq!(
            find(&list, "Ready").unwrap().last_transition_time,
            Time(at(0))
        );
        assert_eq!(find(&list, "Other").unwrap().reason, "B");
    }
}
