//! The rules a JoinRequest obeys on its way into the API server: the requester is whoever
//! creates it, the spec never changes afterwards, and decisions are only ever appended, each
//! in the name of whoever appends it.
//!
//! The rules work on the object as JSON, because a request arrives before the schema's
//! required fields are checked (a new request usually has no `requester` yet) and because a
//! comparison of the stored JSON is exact where a round trip through Rust types might not be.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value};

use super::identity::Unmapped;

/// Whether the webhook may fill in what the caller left out, or only checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Set `spec.requester` on create and `approver`/`decidedAt` of new decisions.
    Mutate,
    /// Check that a (possibly mutated) object already has them right.
    Validate,
}

/// How a field breaks the rules, in the words Kubernetes uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// The value is not allowed for this caller or at this time.
    Forbidden,
    /// The value must be present.
    Required,
}

/// One broken rule, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Path of the field, e.g. `spec.approvals[1].approver`.
    pub field: String,
    /// How it breaks the rules.
    pub kind: RefusalKind,
    /// What is wrong and what is allowed.
    pub detail: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RefusalKind::Forbidden => "Forbidden",
            RefusalKind::Required => "Required value",
        };
        write!(f, "{}: {kind}: {}", self.field, self.detail)
    }
}

/// Every broken rule of one admission request; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusals(pub Vec<Refusal>);

impl fmt::Display for Refusals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, refusal) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{refusal}")?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Collector(Vec<Refusal>);

impl Collector {
    fn forbidden(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.push(field.into(), RefusalKind::Forbidden, detail.into());
    }

    fn required(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.push(field.into(), RefusalKind::Required, detail.into());
    }

    fn push(&mut self, field: String, kind: RefusalKind, detail: String) {
        self.0.push(Refusal {
            field,
            kind,
            detail,
        });
    }

    fn finish(self, object: Value) -> Result<Value, Refusals> {
        if self.0.is_empty() {
            Ok(object)
        } else {
            Err(Refusals(self.0))
        }
    }
}

/// The current time as Kubernetes writes it: RFC 3339, whole seconds, UTC.
pub fn now_in_seconds() -> Value {
    let now = jiff::Timestamp::now();
    let seconds = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    serde_json::to_value(Time(seconds)).unwrap_or(Value::Null)
}

/// Admits a new request made by `caller` (its Google principal, or why it has none). Returns
/// the object to store: in [`Mode::Mutate`] with `spec.requester` set to the caller.
pub fn admit_create(
    object: &Value,
    caller: Result<String, Unmapped>,
    mode: Mode,
) -> Result<Value, Refusals> {
    let mut refusals = Collector::default();
    let mut object = object.clone();
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        refusals.required("spec", "a JoinRequest needs a spec");
        return refusals.finish(Value::Null);
    };

    let named = text(spec.get("requester")).map(str::to_owned);
    match caller {
        Err(unmapped) => refusals.forbidden("spec.requester", unmapped.to_string()),
        Ok(principal) => match named {
            Some(named) if !named.eq_ignore_ascii_case(&principal) => refusals.forbidden(
                "spec.requester",
                format!("{principal} cannot ask in the name of {named}"),
            ),
            None if mode == Mode::Validate => refusals.required(
                "spec.requester",
                "the requester is set from the caller's identity by the mutating webhook",
            ),
            _ => {
                if mode == Mode::Mutate {
                    spec.insert("requester".to_owned(), Value::String(principal));
                }
            }
        },
    }

    if !entries(spec.get("approvals")).is_empty() {
        refusals.forbidden(
            "spec.approvals",
            "a new request carries no decisions; approvers append theirs once it exists",
        );
    }
    refusals.finish(object)
}

/// Admits a change to a stored request by `caller`, who is looked up only when the change
/// appends decisions. Returns the object to store: in [`Mode::Mutate`] with `approver` and
/// `decidedAt` of every new decision set to the caller and `now`.
pub fn admit_update(
    old: &Value,
    new: &Value,
    caller: impl FnOnce() -> Result<String, Unmapped>,
    now: &Value,
    mode: Mode,
) -> Result<Value, Refusals> {
    let mut refusals = Collector::default();
    let mut object = new.clone();
    let empty = Map::new();
    let old_spec = old.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let Some(new_spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        refusals.required("spec", "a JoinRequest needs a spec");
        return refusals.finish(Value::Null);
    };

    let keys: BTreeSet<&String> = old_spec
        .keys()
        .chain(new_spec.keys())
        .filter(|key| key.as_str() != "approvals")
        .collect();
    for key in keys {
        if present(old_spec.get(key)) != present(new_spec.get(key)) {
            refusals.forbidden(
                format!("spec.{key}"),
                "the spec of a JoinRequest cannot change once it is made; approvers may only \
                 append decisions to spec.approvals",
            );
        }
    }

    let before = entries(old_spec.get("approvals"));
    let mut after = entries(new_spec.get("approvals"));
    for (i, (was, is)) in before.iter().zip(&after).enumerate() {
        if was != is {
            refusals.forbidden(
                format!("spec.approvals[{i}]"),
                "a recorded decision cannot be changed; append a new one instead",
            );
        }
    }
    if after.len() < before.len() {
        refusals.forbidden(
            "spec.approvals",
            format!(
                "recorded decisions cannot be removed: the request holds {} and the update \
                 keeps {}",
                before.len(),
                after.len()
            ),
        );
    }

    if after.len() > before.len() {
        let principal = caller();
        for (i, entry) in after.iter_mut().enumerate().skip(before.len()) {
            let at = format!("spec.approvals[{i}]");
            let Some(entry) = entry.as_object_mut() else {
                refusals.required(at, "a decision is an object with `decision` and `comment`");
                continue;
            };
            match &principal {
                Err(unmapped) => refusals.forbidden(format!("{at}.approver"), unmapped.to_string()),
                Ok(principal) => {
                    admit_decision(&at, entry, principal, now, mode, &mut refusals);
                }
            }
        }
        if mode == Mode::Mutate {
            new_spec.insert("approvals".to_owned(), Value::Array(after));
        }
    }
    refusals.finish(object)
}

fn admit_decision(
    at: &str,
    entry: &mut Map<String, Value>,
    principal: &str,
    now: &Value,
    mode: Mode,
    refusals: &mut Collector,
) {
    match text(entry.get("approver")) {
        Some(named) if !named.eq_ignore_ascii_case(principal) => {
            let detail = format!("{principal} cannot record a decision in the name of {named}");
            refusals.forbidden(format!("{at}.approver"), detail);
            return;
        }
        None if mode == Mode::Validate => {
            refusals.required(
                format!("{at}.approver"),
                "the approver is set from the caller's identity by the mutating webhook",
            );
        }
        _ => {}
    }
    match mode {
        Mode::Mutate => {
            entry.insert("approver".to_owned(), Value::String(principal.to_owned()));
            entry.insert("decidedAt".to_owned(), now.clone());
        }
        Mode::Validate => {
            if present(entry.get("decidedAt")).is_none() {
                refusals.required(
                    format!("{at}.decidedAt"),
                    "the time of a decision is set by the mutating webhook",
                );
            }
        }
    }
}

/// A non-empty string value.
fn text(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The entries of a list field; absent and `null` are empty.
fn entries(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// A field's value with `null` treated as absent.
fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn alice() -> Result<String, Unmapped> {
        Ok("alice@example.com".to_owned())
    }

    fn bob() -> Result<String, Unmapped> {
        Ok("bob@example.com".to_owned())
    }

    fn request(spec: Value) -> Value {
        json!({ "metadata": { "name": "r" }, "spec": spec })
    }

    fn stored() -> Value {
        request(json!({
            "group": "readers",
            "requester": "alice@example.com",
            "duration": "PT1H",
            "justification": "incident",
            "approvals": [{
                "decision": "Approve",
                "approver": "carol@example.com",
                "decidedAt": "2026-01-01T00:00:00Z",
            }],
        }))
    }

    fn now() -> Value {
        json!("2026-01-02T03:04:05Z")
    }

    #[test]
    fn a_new_request_gets_the_callers_principal_as_requester() {
        let object = request(json!({ "group": "readers", "justification": "incident" }));
        let admitted = admit_create(&object, alice(), Mode::Mutate).unwrap();
        assert_eq!(admitted["spec"]["requester"], "alice@example.com");
        assert!(admit_create(&admitted, alice(), Mode::Validate).is_ok());
    }

    #[test]
    fn a_new_request_in_someone_elses_name_is_refused_naming_both() {
        let object = request(json!({ "group": "readers", "requester": "bob@example.com" }));
        let refused = admit_create(&object, alice(), Mode::Mutate).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "spec.requester: Forbidden: alice@example.com cannot ask in the name of \
             bob@example.com"
        );
    }

    #[test]
    fn a_new_request_carrying_decisions_is_refused() {
        let object =
            request(json!({ "group": "readers", "approvals": [{ "decision": "Approve" }] }));
        let refused = admit_create(&object, alice(), Mode::Mutate).unwrap_err();
        assert_eq!(refused.0[0].field, "spec.approvals");
    }

    #[test]
    fn a_caller_without_a_google_identity_cannot_create() {
        let unmapped = Err(Unmapped::NotAnEmail {
            username: "admin".to_owned(),
        });
        let object = request(json!({ "group": "readers" }));
        let refused = admit_create(&object, unmapped, Mode::Mutate).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("spec.requester: Forbidden: the Kubernetes user admin"),
            "{refused}"
        );
    }

    #[test]
    fn an_appended_decision_is_attributed_to_its_caller_at_the_time() {
        let mut new = stored();
        new["spec"]["approvals"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "decision": "Deny", "comment": "not now" }));
        let admitted = admit_update(&stored(), &new, bob, &now(), Mode::Mutate).unwrap();
        let added = &admitted["spec"]["approvals"][1];
        assert_eq!(added["approver"], "bob@example.com");
        assert_eq!(added["decidedAt"], "2026-01-02T03:04:05Z");
        assert_eq!(added["comment"], "not now");
        assert!(admit_update(&stored(), &admitted, bob, &now(), Mode::Validate).is_ok());
    }

    #[test]
    fn a_decision_in_someone_elses_name_is_refused_naming_the_field() {
        let mut new = stored();
        new["spec"]["approvals"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "decision": "Approve", "approver": "bob@example.com" }));
        let refused = admit_update(&stored(), &new, alice, &now(), Mode::Mutate).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "spec.approvals[1].approver: Forbidden: alice@example.com cannot record a decision \
             in the name of bob@example.com"
        );
    }

    #[test]
    fn recorded_decisions_cannot_be_edited_or_removed() {
        let mut edited = stored();
        edited["spec"]["approvals"][0]["decision"] = json!("Deny");
        let refused = admit_update(&stored(), &edited, bob, &now(), Mode::Mutate).unwrap_err();
        assert_eq!(refused.0[0].field, "spec.approvals[0]");

        let mut removed = stored();
        removed["spec"]["approvals"] = json!([]);
        let refused = admit_update(&stored(), &removed, bob, &now(), Mode::Mutate).unwrap_err();
        assert!(
            refused.to_string().starts_with(
                "spec.approvals: Forbidden: recorded decisions cannot be removed: the request \
                 holds 1 and the update keeps 0"
            ),
            "{refused}"
        );
    }

    #[test]
    fn the_rest_of_the_spec_is_immutable() {
        let mut new = stored();
        new["spec"]["duration"] = json!("PT8H");
        new["spec"]["requester"] = json!("bob@example.com");
        let refused = admit_update(&stored(), &new, alice, &now(), Mode::Mutate).unwrap_err();
        let fields: Vec<_> = refused.0.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, ["spec.duration", "spec.requester"]);
    }

    #[test]
    fn a_change_outside_the_spec_needs_no_google_identity() {
        let mut new = stored();
        new["metadata"]["finalizers"] = json!(["jitgroups.dev/membership"]);
        let unmapped = || {
            Err(Unmapped::ServiceAccount {
                username: "system:serviceaccount:jit:controller".to_owned(),
            })
        };
        let admitted = admit_update(&stored(), &new, unmapped, &now(), Mode::Mutate).unwrap();
        assert_eq!(admitted, new);
    }
}
