//! The Restore's conditions (ARCHITECTURE.md §K1.5): types, reasons, and setting one while
//! keeping its transition time when its status does not change (`meta.SetStatusCondition`).

use cairn_api::restore::RestoreStatus;
use cairn_api::well_known::conditions::restore::{
    CONDITION_IGNORED_FIELD, REASON_IGNORED_FIELD, REASON_REPO_OK, REASON_SUCCEED,
    REASON_VALIDATE_OK,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Sets condition `type_`: `True` when `reason` is one of the success reasons, else `False`.
pub fn set(status: &mut RestoreStatus, type_: &str, reason: &str, message: &str, now: Timestamp) {
    let value = if matches!(
        reason,
        REASON_REPO_OK | REASON_VALIDATE_OK | REASON_SUCCEED | REASON_IGNORED_FIELD
    ) {
        "True"
    } else {
        "False"
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != value {
                existing.last_transition_time = Time(now);
            }
            existing.status = value.into();
            existing.reason = reason.into();
            existing.message = message.into();
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status: value.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: None,
        }),
    }
}

/// Records the fields of the spec Cairn does not act on (`message`, from
/// `cairn_api::ignored::message`) in condition `IgnoredField`. Returns whether the condition is
/// new or says something new, i.e. whether the `IgnoredField` Warning event is due: once per
/// set of fields, however often the Restore is reconciled.
pub fn set_ignored_fields(status: &mut RestoreStatus, message: &str, now: Timestamp) -> bool {
    if get(status, CONDITION_IGNORED_FIELD).is_some_and(|c| c.message == message) {
        return false;
    }
    set(
        status,
        CONDITION_IGNORED_FIELD,
        REASON_IGNORED_FIELD,
        message,
        now,
    );
    true
}

/// Whether condition `type_` is `True`.
pub fn is_true(status: &RestoreStatus, type_: &str) -> bool {
    get(status, type_).is_some_and(|c| c.status == "True")
}

/// Condition `type_`, if set.
pub fn get<'s>(status: &'s RestoreStatus, type_: &str) -> Option<&'s Condition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::well_known::conditions::restore::{
        CONDITION_PREPARE_DATA, REASON_FAILED, REASON_PROCESSING,
    };

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut status = RestoreStatus::default();
        set(
            &mut status,
            CONDITION_PREPARE_DATA,
            REASON_PROCESSING,
            "a",
            t(1),
        );
        set(
            &mut status,
            CONDITION_PREPARE_DATA,
            REASON_FAILED,
            "b",
            t(2),
        );
        let c = get(&status, CONDITION_PREPARE_DATA).unwrap();
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.0),
            ("False", t(1))
        );
        assert_eq!(c.message, "b");
        set(
            &mut status,
            CONDITION_PREPARE_DATA,
            REASON_SUCCEED,
            "c",
            t(3),
        );
        let c = get(&status, CONDITION_PREPARE_DATA).unwrap();
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.0),
            ("True", t(3))
        );
        assert!(is_true(&status, CONDITION_PREPARE_DATA));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
    }
}
