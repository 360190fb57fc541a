//! Durations written in policies and requests, and the expiry constraint that bounds them.

use std::fmt;
use std::time::Duration;

use jiff::fmt::temporal::SpanParser;
use jiff::{SignedDuration, SpanRelativeTo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{Problems, ValidationErrors};

/// The expiry constraint as written in a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpirySpec {
    /// Shortest membership a request may ask for, as an ISO-8601 duration (e.g. `PT1H`).
    pub min: String,
    /// Longest membership a request may ask for, as an ISO-8601 duration (e.g. `P1D`).
    /// `min` equal to `max` fixes the duration.
    pub max: String,
    /// Duration used when a request names none; must lie within `[min, max]`. Without it,
    /// a request must name its duration unless `min` equals `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A positive duration parsed from ISO-8601 text, remembering how it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDuration {
    text: String,
    duration: Duration,
}

const DURATION_FORMS: &str = "must be an ISO-8601 duration in weeks, days, hours, minutes or \
                              seconds, such as PT30M, PT8H or P1D";

impl PolicyDuration {
    /// Parses an ISO-8601 duration. Days count as 24 hours and weeks as 7 days; years and
    /// months are refused because their length varies.
    pub fn parse(text: &str) -> Result<Self, String> {
        static PARSER: SpanParser = SpanParser::new();
        let span = PARSER
            .parse_span(text.trim())
            .map_err(|_| DURATION_FORMS.to_owned())?;
        if span.get_years() != 0 || span.get_months() != 0 {
            return Err(format!(
                "{DURATION_FORMS}; years and months are not allowed"
            ));
        }
        let signed = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|_| DURATION_FORMS.to_owned())?;
        if signed <= SignedDuration::ZERO {
            return Err("must be longer than zero".to_owned());
        }
        let duration = Duration::try_from(signed).map_err(|_| DURATION_FORMS.to_owned())?;
        Ok(Self {
            text: text.trim().to_owned(),
            duration,
        })
    }

    /// The length of the duration.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The duration as the user wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for PolicyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Bounds on how long a membership may last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiryConstraint {
    /// Shortest allowed duration.
    pub min: PolicyDuration,
    /// Longest allowed duration.
    pub max: PolicyDuration,
    /// Duration used when a request names none.
    pub default: Option<PolicyDuration>,
}

/// Why a requested duration is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryViolation {
    /// The request's duration is not an ISO-8601 duration.
    #[error("duration \"{text}\" is not valid: {detail}")]
    Unparsable {
        /// The duration as requested.
        text: String,
        /// What is allowed.
        detail: String,
    },
    /// The duration lies outside `[min, max]`.
    #[error("duration {requested} is outside the allowed range [{min}, {max}]")]
    OutOfRange {
        /// The duration as requested.
        requested: String,
        /// The shortest allowed duration.
        min: String,
        /// The longest allowed duration.
        max: String,
    },
    /// The request names no duration and the constraint has no default.
    #[error("a duration is required: choose one between {min} and {max}")]
    Missing {
        /// The shortest allowed duration.
        min: String,
        /// The longest allowed duration.
        max: String,
    },
}

impl ExpiryConstraint {
    /// Parses and checks a written constraint; `path` is its field path.
    pub fn parse(path: &str, spec: &ExpirySpec) -> Result<Self, ValidationErrors> {
        let mut problems = Problems::default();
        let min = problems.parse(
            &format!("{path}.min"),
            &spec.min,
            PolicyDuration::parse(&spec.min),
        );
        let max = problems.parse(
            &format!("{path}.max"),
            &spec.max,
            PolicyDuration::parse(&spec.max),
        );
        let default = spec.default.as_ref().and_then(|text| {
            problems.parse(
                &format!("{path}.default"),
                text,
                PolicyDuration::parse(text),
            )
        });
        let (Some(min), Some(max)) = (min, max) else {
            return Err(problems.into_errors());
        };
        if min.duration() > max.duration() {
            problems.invalid(
                format!("{path}.min"),
                min.text(),
                format!("must not be longer than max ({max})"),
            );
        } else if let Some(default) = &default
            && (default.duration() < min.duration() || default.duration() > max.duration())
        {
            problems.invalid(
                format!("{path}.default"),
                default.text(),
                format!("must lie within [{min}, {max}]"),
            );
        }
        problems.finish(|| Self { min, max, default })
    }

    /// Checks that `self` lies within `outer`, reporting under `path`.
    pub fn check_within(&self, path: &str, outer: &Self, problems: &mut Problems) {
        if self.min.duration() < outer.min.duration() {
            problems.forbidden(
                format!("{path}.min"),
                self.min.text(),
                format!("the environment allows no less than {}", outer.min),
            );
        }
        if self.max.duration() > outer.max.duration() {
            problems.forbidden(
                format!("{path}.max"),
                self.max.text(),
                format!("the environment allows no more than {}", outer.max),
            );
        }
    }

    /// The duration a request gets: the requested one when it lies within `[min, max]`,
    /// the default when it names none, or the fixed duration when `min` equals `max`.
    pub fn resolve(&self, requested: Option<&str>) -> Result<Duration, ExpiryViolation> {
        let Some(text) = requested.map(str::trim).filter(|t| !t.is_empty()) else {
            if let Some(default) = &self.default {
                return Ok(default.duration());
            }
            if self.min.duration() == self.max.duration() {
                return Ok(self.min.duration());
            }
            return Err(ExpiryViolation::Missing {
                min: self.min.to_string(),
                max: self.max.to_string(),
            });
        };
        let requested =
            PolicyDuration::parse(text).map_err(|detail| ExpiryViolation::Unparsable {
                text: text.to_owned(),
                detail,
            })?;
        if requested.duration() < self.min.duration() || requested.duration() > self.max.duration()
        {
            return Err(ExpiryViolation::OutOfRange {
                requested: requested.to_string(),
                min: self.min.to_string(),
                max: self.max.to_string(),
            });
        }
        Ok(requested.duration())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: &str, max: &str, default: Option<&str>) -> ExpirySpec {
        ExpirySpec {
            min: min.into(),
            max: max.into(),
            default: default.map(Into::into),
        }
    }

    fn constraint(min: &str, max: &str, default: Option<&str>) -> ExpiryConstraint {
        ExpiryConstraint::parse("spec.constraints.join.expiry", &spec(min, max, default)).unwrap()
    }

    #[test]
    fn iso_durations_parse_with_days_of_24_hours() {
        assert_eq!(
            PolicyDuration::parse("PT1H").unwrap().duration(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            PolicyDuration::parse("P1D").unwrap().duration(),
            Duration::from_secs(86400)
        );
        assert_eq!(
            PolicyDuration::parse("P1W").unwrap().duration(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(
            PolicyDuration::parse("P1DT2H30M").unwrap().duration(),
            Duration::from_secs(86400 + 2 * 3600 + 1800)
        );
    }

    #[test]
    fn durations_with_months_years_negatives_or_other_syntax_are_refused() {
        assert!(PolicyDuration::parse("P1M").unwrap_err().contains("months"));
        assert!(PolicyDuration::parse("P1Y").is_err());
        assert!(PolicyDuration::parse("-PT1H").is_err());
        assert!(PolicyDuration::parse("PT0S").is_err());
        assert!(PolicyDuration::parse("1h").is_err());
        assert!(PolicyDuration::parse("").is_err());
    }

    #[test]
    fn a_duration_within_bounds_is_granted_as_requested() {
        let c = constraint("PT1H", "P1D", None);
        assert_eq!(c.resolve(Some("PT2H")).unwrap(), Duration::from_secs(7200));
        assert_eq!(c.resolve(Some("PT1H")).unwrap(), Duration::from_secs(3600));
        assert_eq!(
            c.resolve(Some("PT24H")).unwrap(),
            Duration::from_secs(86400)
        );
    }

    #[test]
    fn a_duration_outside_bounds_names_the_bounds() {
        let c = constraint("PT1H", "P1D", None);
        let err = c.resolve(Some("P2D")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "duration P2D is outside the allowed range [PT1H, P1D]"
        );
        assert!(matches!(
            c.resolve(Some("PT30M")),
            Err(ExpiryViolation::OutOfRange { .. })
        ));
    }

    #[test]
    fn a_missing_duration_takes_the_default_or_the_fixed_value() {
        assert_eq!(
            constraint("PT1H", "P1D", Some("PT4H"))
                .resolve(None)
                .unwrap(),
            Duration::from_secs(4 * 3600)
        );
        assert_eq!(
            constraint("PT2H", "PT2H", None).resolve(Some("")).unwrap(),
            Duration::from_secs(7200)
        );
        let err = constraint("PT1H", "P1D", None).resolve(None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a duration is required: choose one between PT1H and P1D"
        );
    }

    #[test]
    fn an_unparsable_request_duration_says_what_is_allowed() {
        let err = constraint("PT1H", "P1D", None)
            .resolve(Some("two hours"))
            .unwrap_err();
        assert!(
            err.to_string().contains("\"two hours\" is not valid"),
            "{err}"
        );
        assert!(err.to_string().contains("PT30M"), "{err}");
    }

    #[test]
    fn min_longer_than_max_and_default_outside_are_reported() {
        let err = ExpiryConstraint::parse("c", &spec("P2D", "P1D", None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.min: Invalid value: \"P2D\": must not be longer than max (P1D)"
        );
        let err = ExpiryConstraint::parse("c", &spec("PT1H", "PT2H", Some("PT3H"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("c.default: Invalid value: \"PT3H\": must lie within [PT1H, PT2H]")
        );
        let err = ExpiryConstraint::parse("c", &spec("soon", "later", None)).unwrap_err();
        assert_eq!(err.problems().len(), 2);
    }

    #[test]
    fn a_group_constraint_must_lie_within_the_environment_constraint() {
        let env = constraint("PT1H", "P1D", None);
        let group = constraint("PT30M", "P2D", None);
        let mut problems = Problems::default();
        group.check_within("spec.constraints.join.expiry", &env, &mut problems);
        let err = problems.finish(|| ()).unwrap_err().to_string();
        assert!(err.contains(
            "expiry.min: Forbidden: \"PT30M\": the environment allows no less than PT1H"
        ));
        assert!(
            err.contains("expiry.max: Forbidden: \"P2D\": the environment allows no more than P1D")
        );
    }
}
