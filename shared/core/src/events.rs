//! Event mappings: does an event's data meet a mapping's conditions, and the
//! goal text a mapping renders from it.

use std::collections::BTreeMap;

/// A scalar from an event's data.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Num(f64),
    Str(String),
    Bool(bool),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Scalar::Num(n) => format!("{n}"),
            Scalar::Str(s) => s.clone(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    Cmp(Op, f64),
    Equals(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub field: String,
    pub test: Test,
}

/// Parses a condition value: `"> 20"`, `">= 3"`, `"!= 0"`, a number (equal
/// to it) or any other string (equal to it).
pub fn parse_test(value: &str) -> Result<Test, String> {
    let v = value.trim();
    for (prefix, op) in [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">", Op::Gt),
        ("<", Op::Lt),
    ] {
        if let Some(rest) = v.strip_prefix(prefix) {
            let n: f64 = rest
                .trim()
                .parse()
                .map_err(|_| format!("\"{value}\": \"{}\" is not a number", rest.trim()))?;
            return Ok(Test::Cmp(op, n));
        }
    }
    Ok(Test::Equals(v.to_string()))
}

/// Checks every condition; the error says which one failed and why.
pub fn check(conditions: &[Condition], data: &BTreeMap<String, Scalar>) -> Result<(), String> {
    for c in conditions {
        let value = data.get(&c.field);
        let ok = match (&c.test, value) {
            (_, None) => return Err(format!("data has no field \"{}\"", c.field)),
            (Test::Cmp(op, limit), Some(Scalar::Num(n))) => match op {
                Op::Gt => n > limit,
                Op::Ge => n >= limit,
                Op::Lt => n < limit,
                Op::Le => n <= limit,
                Op::Eq => n == limit,
                Op::Ne => n != limit,
            },
            (Test::Cmp(..), Some(other)) => {
                return Err(format!(
                    "field \"{}\" is {} and not a number",
                    c.field,
                    other.text()
                ))
            }
            (Test::Equals(want), Some(v)) => &v.text() == want,
        };
        if !ok {
            return Err(format!(
                "field \"{}\" is {}, which fails {:?}",
                c.field,
                value.map(Scalar::text).unwrap_or_default(),
                c.test
            ));
        }
    }
    Ok(())
}

/// Replaces `{field}` with the field's value; unknown fields stay as they are.
pub fn render(template: &str, data: &BTreeMap<String, Scalar>) -> String {
    let mut out = template.to_string();
    for (k, v) in data {
        out = out.replace(&format!("{{{k}}}"), &v.text());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> BTreeMap<String, Scalar> {
        [
            ("percentageDrop".to_string(), Scalar::Num(32.0)),
            ("metric".to_string(), Scalar::Str("conversion_rate".into())),
        ]
        .into()
    }

    #[test]
    fn numeric_and_equality_conditions() {
        let c = |field: &str, v: &str| Condition {
            field: field.into(),
            test: parse_test(v).unwrap(),
        };
        assert!(check(&[c("percentageDrop", "> 20")], &data()).is_ok());
        assert!(check(
            &[c("percentageDrop", "<= 32"), c("metric", "conversion_rate")],
            &data()
        )
        .is_ok());
        let err = check(&[c("percentageDrop", "> 40")], &data()).unwrap_err();
        assert!(err.starts_with("field \"percentageDrop\" is 32"), "{err}");
        assert_eq!(
            check(&[c("lift", "> 1")], &data()).unwrap_err(),
            "data has no field \"lift\""
        );
        assert!(check(&[c("metric", "> 1")], &data()).is_err());
        assert!(parse_test("> x").is_err());
    }

    #[test]
    fn goal_text_takes_fields_from_the_data() {
        assert_eq!(
            render("{metric} fell {percentageDrop}% ({other})", &data()),
            "conversion_rate fell 32% ({other})"
        );
    }
}
