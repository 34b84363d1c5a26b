//! Extension schemas declared by a source at run time (RFC 7643 §7 representation), as they are
//! stored in `source.schema_declared` events.

use serde::{Deserialize, Serialize};

/// A schema a source declared at run time (an extension of User or Group), in the RFC 7643 §7
/// representation. Missing characteristics take the RFC's defaults (§2.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredSchema {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub attributes: Vec<DeclaredAttribute>,
}

/// One attribute of a declared schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredAttribute {
    pub name: String,
    #[serde(rename = "type", default = "default_type")]
    pub kind: String,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default = "default_mutability")]
    pub mutability: String,
    #[serde(default = "default_returned")]
    pub returned: String,
    #[serde(default = "default_uniqueness")]
    pub uniqueness: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_attributes: Vec<DeclaredAttribute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canonical_values: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_types: Vec<String>,
}

fn default_type() -> String {
    "string".into()
}
fn default_mutability() -> String {
    "readWrite".into()
}
fn default_returned() -> String {
    "default".into()
}
fn default_uniqueness() -> String {
    "none".into()
}

impl DeclaredSchema {
    pub fn attribute(&self, name: &str) -> Option<&DeclaredAttribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether comparisons on `attr`/`sub` of this schema are case-exact.
    pub fn case_exact(&self, attr: &str, sub: Option<&str>) -> bool {
        let Some(a) = self.attribute(attr) else {
            return false;
        };
        let find = |n: &str| {
            a.sub_attributes
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(n))
        };
        match sub {
            None => find("value").map_or(a.case_exact, |v| v.case_exact),
            Some(s) => find(s).is_some_and(|x| x.case_exact),
        }
    }
}
