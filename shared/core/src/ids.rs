//! Identifier newtypes. They are plain strings on the wire; the types keep a
//! goal id from being passed where a task id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_string())
            }
        }
    };
}

id_type!(
    /// The account-level owner of goals, budgets and tool connections.
    TenantId
);
id_type!(
    /// One user goal, unique within its tenant.
    GoalId
);
id_type!(
    /// One task of a goal's plan, unique within its goal.
    TaskId
);
id_type!(
    /// A skill's registry name, e.g. `copywriting`.
    SkillName
);

/// Characters allowed in ids that end up inside DynamoDB keys. `#` is the key
/// separator, so it must never appear inside an id.
pub fn is_valid_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_the_key_separator_and_empty_values() {
        assert!(is_valid_id("goal-20261125-abc"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a#b"));
        assert!(!is_valid_id("a b"));
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = GoalId::new("g1");
        assert_eq!(serde_json_like(&id), "g1");
    }

    fn serde_json_like(id: &GoalId) -> String {
        id.to_string()
    }
}
