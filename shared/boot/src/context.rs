//! The tenant's product marketing context: what the product is, for whom,
//! and how it speaks. The dashboard's wizard (and `PUT /context`) writes it;
//! every agent's system prompt carries it, after the skill's instructions,
//! so it is part of the cached prefix.

use crate::Deps;
use mktg_core::TenantId;
use mktg_store::StoreError;
use serde::{Deserialize, Serialize};

/// Where the document lives among the tenant's documents: its settings.
pub const COLLECTION: &str = crate::tenant::SETTINGS;
pub const ID: &str = "product-context";

/// Longest answer to one question, in characters.
pub const MAX_FIELD: usize = 2_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductContext {
    /// What the product is and does, in a sentence or two.
    pub product: String,
    /// Who buys and uses it.
    pub audience: String,
    /// The problem it solves for them.
    #[serde(default)]
    pub problem: String,
    /// Why it, rather than the alternatives.
    #[serde(default)]
    pub positioning: String,
    /// How it speaks: tone, words to use and avoid.
    #[serde(default)]
    pub voice: String,
    /// Who else they consider.
    #[serde(default)]
    pub competitors: String,
    /// What marketing should achieve now.
    #[serde(default)]
    pub goals: String,
}

impl ProductContext {
    const FIELDS: [&'static str; 7] = [
        "product",
        "audience",
        "problem",
        "positioning",
        "voice",
        "competitors",
        "goals",
    ];

    fn values(&self) -> [&str; 7] {
        [
            &self.product,
            &self.audience,
            &self.problem,
            &self.positioning,
            &self.voice,
            &self.competitors,
            &self.goals,
        ]
    }

    /// Product and audience are required; no answer may be longer than
    /// [`MAX_FIELD`]. The error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in Self::FIELDS.iter().zip(self.values()) {
            if value.chars().count() > MAX_FIELD {
                return Err(format!(
                    "{name} is {} characters; at most {MAX_FIELD}",
                    value.chars().count()
                ));
            }
        }
        for (name, value) in [("product", &self.product), ("audience", &self.audience)] {
            if value.trim().is_empty() {
                return Err(format!("{name} is required"));
            }
        }
        Ok(())
    }

    /// The block agents read, answered questions only.
    pub fn to_prompt(&self) -> String {
        let mut s = String::from(
            "\n\n## Product marketing context\nThe product you market, as its team describes it. Stay consistent with it.\n",
        );
        for (name, value) in Self::FIELDS.iter().zip(self.values()) {
            if !value.trim().is_empty() {
                s.push_str(&format!("- {name}: {}\n", value.trim()));
            }
        }
        s
    }
}

/// Replaces the tenant's context.
pub async fn save(
    deps: &Deps,
    tenant: &TenantId,
    context: &ProductContext,
    by: &str,
) -> Result<(), StoreError> {
    let body = serde_json::json!({
        "context": context,
        "updated_ms": deps.clock.now_ms(),
        "updated_by": by,
    });
    crate::tenant::put_doc(deps, tenant, COLLECTION, ID, body).await?;
    crate::tenant::register(deps, tenant).await
}
