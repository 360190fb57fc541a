//! The small part of CEL that Cloud Identity's search methods accept: clauses joined by `&&`,
//! each an equality (`parent == 'customers/C01'`), a label test
//! (`'cloudidentity.googleapis.com/groups.security' in labels`, or the older
//! `labels:cloudidentity.googleapis.com/groups.security`), or a string method on a field
//! (`group_key.startsWith('jit.')`, `display_name.contains('ops')`).
//!
//! Disjunctions, negations and parentheses around more than one clause are not accepted; each
//! method then says which fields it allows.

use crate::error::{ApiError, ApiResult};

/// One clause of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// `field == 'value'`
    Equals(Field, String),
    /// `field.startsWith('value')`
    StartsWith(Field, String),
    /// `field.contains('value')`
    Contains(Field, String),
    /// `'label' in labels`
    HasLabel(String),
}

/// A field a clause can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `parent`
    Parent,
    /// `group_key` (or `groupKey`), the group's email address
    GroupKey,
    /// `display_name` (or `displayName`)
    DisplayName,
    /// `domain_name`, the domain of the group's address
    DomainName,
    /// `member_key_id`
    MemberKeyId,
    /// `member_key_namespace`
    MemberKeyNamespace,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "parent" => Field::Parent,
            "group_key" | "groupKey" | "group_key.id" | "groupKey.id" => Field::GroupKey,
            "display_name" | "displayName" => Field::DisplayName,
            "domain_name" | "domainName" => Field::DomainName,
            "member_key_id" | "memberKeyId" => Field::MemberKeyId,
            "member_key_namespace" | "memberKeyNamespace" => Field::MemberKeyNamespace,
            _ => return None,
        })
    }
}

/// Parses a query into its clauses.
pub fn parse(query: &str) -> ApiResult<Vec<Clause>> {
    let parts = split_conjunction(query)?;
    if parts.iter().all(|part| part.is_empty()) {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: the query is empty.",
        ));
    }
    parts.iter().map(|part| parse_clause(part)).collect()
}

fn invalid(query: &str) -> ApiError {
    ApiError::invalid(format!(
        "Request contains an invalid argument: the query clause {query:?} is not supported. \
         Use clauses such as parent == 'customers/C01', 'LABEL' in labels or \
         group_key.startsWith('prefix'), joined by &&."
    ))
}

/// Splits at `&&` outside quotes.
fn split_conjunction(query: &str) -> ApiResult<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                current.push(c);
            }
            Some(_) => current.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                current.push(c);
            }
            None if c == '&' && chars.peek() == Some(&'&') => {
                chars.next();
                parts.push(current.trim().to_owned());
                current.clear();
            }
            None => current.push(c),
        }
    }
    if quote.is_some() {
        return Err(ApiError::invalid(format!(
            "Request contains an invalid argument: unterminated string in query {query:?}."
        )));
    }
    parts.push(current.trim().to_owned());
    Ok(parts)
}

fn parse_clause(text: &str) -> ApiResult<Clause> {
    let mut clause = text.trim();
    while let Some(inner) = clause.strip_prefix('(').and_then(|c| c.strip_suffix(')')) {
        clause = inner.trim();
    }

    if let Some(label) = clause.strip_prefix("labels:") {
        let label = label.trim();
        return match string_literal(label) {
            Some(value) => Ok(Clause::HasLabel(value)),
            None if !label.is_empty() && !label.contains(char::is_whitespace) => {
                Ok(Clause::HasLabel(label.to_owned()))
            }
            None => Err(invalid(text)),
        };
    }

    if let Some(literal) = clause.strip_suffix("in labels") {
        return string_literal(literal.trim())
            .map(Clause::HasLabel)
            .ok_or_else(|| invalid(text));
    }

    if let Some((left, right)) = clause.split_once("==") {
        let field = Field::parse(left.trim()).ok_or_else(|| invalid(text))?;
        let value = string_literal(right.trim()).ok_or_else(|| invalid(text))?;
        return Ok(Clause::Equals(field, value));
    }

    for (method, make) in [
        (
            ".startsWith(",
            Clause::StartsWith as fn(Field, String) -> Clause,
        ),
        (
            ".contains(",
            Clause::Contains as fn(Field, String) -> Clause,
        ),
    ] {
        if let Some((left, rest)) = clause.split_once(method) {
            let field = Field::parse(left.trim()).ok_or_else(|| invalid(text))?;
            let argument = rest.strip_suffix(')').ok_or_else(|| invalid(text))?;
            let value = string_literal(argument.trim()).ok_or_else(|| invalid(text))?;
            return Ok(make(field, value));
        }
    }

    Err(invalid(text))
}

/// The content of a single- or double-quoted string literal.
fn string_literal(text: &str) -> Option<String> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = text.strip_prefix(quote)?.strip_suffix(quote)?;
    (!inner.contains(quote)).then(|| inner.to_owned())
}

/// Checks that a query only uses the given fields and, if `labels_allowed`, label clauses.
pub fn only_fields(clauses: &[Clause], allowed: &[Field], labels_allowed: bool) -> ApiResult<()> {
    for clause in clauses {
        let ok = match clause {
            Clause::Equals(field, _)
            | Clause::StartsWith(field, _)
            | Clause::Contains(field, _) => allowed.contains(field),
            Clause::HasLabel(_) => labels_allowed,
        };
        if !ok {
            return Err(ApiError::invalid(format!(
                "Request contains an invalid argument: the clause {clause:?} is not supported by \
                 this method."
            )));
        }
    }
    Ok(())
}

/// The value of the first `field == 'value'` clause.
pub fn equality(clauses: &[Clause], wanted: Field) -> Option<&str> {
    clauses.iter().find_map(|clause| match clause {
        Clause::Equals(field, value) if *field == wanted => Some(value.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_group_search_query_parses() {
        let clauses = parse(
            "parent == 'customers/C01' && 'cloudidentity.googleapis.com/groups.security' in \
             labels && groupKey.startsWith('jit.prod.')",
        );
        assert_eq!(
            clauses.ok(),
            Some(vec![
                Clause::Equals(Field::Parent, "customers/C01".to_owned()),
                Clause::HasLabel("cloudidentity.googleapis.com/groups.security".to_owned()),
                Clause::StartsWith(Field::GroupKey, "jit.prod.".to_owned()),
            ])
        );
    }

    #[test]
    fn the_older_label_form_parses() {
        let clauses =
            parse("parent=='customers/C01'&&labels:cloudidentity.googleapis.com/groups.security");
        assert_eq!(
            clauses.ok(),
            Some(vec![
                Clause::Equals(Field::Parent, "customers/C01".to_owned()),
                Clause::HasLabel("cloudidentity.googleapis.com/groups.security".to_owned()),
            ])
        );
    }

    #[test]
    fn disjunctions_and_unknown_fields_are_refused() {
        assert!(parse("parent == 'customers/C01' || parent == 'customers/C02'").is_err());
        assert!(parse("email == 'a@b.c'").is_err());
        assert!(parse("member_key_id == 'a@b.c").is_err());
        assert!(parse("").is_err());
    }
}
