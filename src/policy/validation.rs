//! Validation problems, reported all at once with the field path, the offending value and
//! what is allowed, in the wording Kubernetes uses for its own validation errors.

use std::fmt;

/// What is wrong with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The value is present but not acceptable.
    Invalid,
    /// The field must be set.
    Required,
    /// The value repeats an earlier one.
    Duplicate,
    /// The value is well-formed but the environment does not permit it.
    Forbidden,
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// Path of the field, e.g. `spec.access[1].principal`.
    pub field: String,
    /// What is wrong.
    pub kind: ProblemKind,
    /// The offending value, as the user wrote it (empty for a missing value).
    pub value: String,
    /// What is allowed instead.
    pub detail: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        let value = &self.value;
        let detail = &self.detail;
        match self.kind {
            ProblemKind::Invalid => write!(f, "{field}: Invalid value: \"{value}\": {detail}"),
            ProblemKind::Required => write!(f, "{field}: Required value: {detail}"),
            ProblemKind::Duplicate => write!(f, "{field}: Duplicate value: \"{value}\": {detail}"),
            ProblemKind::Forbidden => write!(f, "{field}: Forbidden: \"{value}\": {detail}"),
        }
    }
}

/// Every problem found in one object; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors(Vec<FieldProblem>);

impl ValidationErrors {
    /// The problems, in the order the fields were checked.
    pub fn problems(&self) -> &[FieldProblem] {
        &self.0
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Collects problems while a whole object is checked, so that the user sees all of them.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldProblem>);

impl Problems {
    /// Records an unacceptable value.
    pub fn invalid(&mut self, field: impl Into<String>, value: &str, detail: impl Into<String>) {
        self.push(field, ProblemKind::Invalid, value, detail);
    }

    /// Records a missing value.
    pub fn required(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.push(field, ProblemKind::Required, "", detail);
    }

    /// Records a repeated value.
    pub fn duplicate(&mut self, field: impl Into<String>, value: &str, detail: impl Into<String>) {
        self.push(field, ProblemKind::Duplicate, value, detail);
    }

    /// Records a value the environment does not permit.
    pub fn forbidden(&mut self, field: impl Into<String>, value: &str, detail: impl Into<String>) {
        self.push(field, ProblemKind::Forbidden, value, detail);
    }

    /// Adds the problems found by a nested check.
    pub fn extend(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }

    /// Runs a parser; on failure records its message as an invalid value and yields `None`.
    pub fn parse<T>(&mut self, field: &str, value: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(detail) => {
                self.invalid(field, value, detail);
                None
            }
        }
    }

    /// Whether nothing was recorded so far.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was recorded, otherwise every problem.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(ValidationErrors(self.0))
        }
    }

    /// The problems recorded so far; for callers that have recorded at least one.
    pub fn into_errors(self) -> ValidationErrors {
        ValidationErrors(self.0)
    }

    fn push(
        &mut self,
        field: impl Into<String>,
        kind: ProblemKind,
        value: &str,
        detail: impl Into<String>,
    ) {
        self.0.push(FieldProblem {
            field: field.into(),
            kind,
            value: value.to_owned(),
            detail: detail.into(),
        });
    }
}
