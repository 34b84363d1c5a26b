//! The SCIM schemas Roster serves (RFC 7643 §4 and §8.7.1): core User, core Group and the
//! enterprise User extension. One definition serves the discovery endpoints (`/Schemas`,
//! `/ResourceTypes`), the canonical spelling of attribute names in request bodies, and each
//! attribute's `caseExact` in filters.

mod check;

pub use check::{Checked, Def, Extension, Invalid, ResourceSchemas, Target, MAX_VALUES};
pub use roster_events::{DeclaredAttribute, DeclaredSchema};
use serde_json::{json, Map, Value};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
}

/// One attribute definition (RFC 7643 §7).
#[derive(Clone, Copy, Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: Type,
    pub multi_valued: bool,
    pub description: &'static str,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    /// `none`, `server` or `global`.
    pub uniqueness: &'static str,
    pub sub_attributes: &'static [Attribute],
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
}

const fn attr(name: &'static str, kind: Type, description: &'static str) -> Attribute {
    Attribute {
        name,
        kind,
        multi_valued: false,
        description,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: "none",
        sub_attributes: &[],
        canonical_values: &[],
        reference_types: &[],
    }
}

const fn s(name: &'static str, description: &'static str) -> Attribute {
    attr(name, Type::String, description)
}

const fn complex(
    name: &'static str,
    description: &'static str,
    subs: &'static [Attribute],
) -> Attribute {
    Attribute {
        sub_attributes: subs,
        ..attr(name, Type::Complex, description)
    }
}

const fn multi(a: Attribute) -> Attribute {
    Attribute {
        multi_valued: true,
        ..a
    }
}

const fn typed(a: Attribute, values: &'static [&'static str]) -> Attribute {
    Attribute {
        canonical_values: values,
        ..a
    }
}

const fn read_only(a: Attribute) -> Attribute {
    Attribute {
        mutability: Mutability::ReadOnly,
        ..a
    }
}

const fn reference(
    name: &'static str,
    description: &'static str,
    types: &'static [&'static str],
) -> Attribute {
    Attribute {
        reference_types: types,
        ..attr(name, Type::Reference, description)
    }
}

const PRIMARY: Attribute = attr(
    "primary",
    Type::Boolean,
    "Whether this value is the primary one; at most one value is primary.",
);
const DISPLAY: Attribute = s(
    "display",
    "A human-readable name, primarily used for display purposes.",
);

/// The sub-attributes of a typed multi-valued attribute (emails, phoneNumbers, ...).
macro_rules! plural {
    ($value:expr, $types:expr) => {
        &[
            $value,
            DISPLAY,
            typed(
                s("type", "A label indicating the attribute's function."),
                $types,
            ),
            PRIMARY,
        ]
    };
}

/// A schema (RFC 7643 §7).
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

pub static USER_SCHEMA: Schema = Schema {
    id: USER,
    name: "User",
    description: "User Account",
    attributes: &[
        Attribute {
            required: true,
            uniqueness: "server",
            ..s(
                "userName",
                "Unique identifier for the User, typically used to sign in.",
            )
        },
        complex(
            "name",
            "The components of the user's real name.",
            &[
                s("formatted", "The full name, formatted for display."),
                s("familyName", "The family name (last name)."),
                s("givenName", "The given name (first name)."),
                s("middleName", "The middle name(s)."),
                s("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
                s("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
            ],
        ),
        s(
            "displayName",
            "The name of the User, suitable for display to end-users.",
        ),
        s("nickName", "The casual way to address the user."),
        reference(
            "profileUrl",
            "A fully qualified URL to the User's online profile.",
            &["external"],
        ),
        s("title", "The user's title, such as 'Vice President'."),
        s(
            "userType",
            "The relationship between the organization and the user.",
        ),
        s(
            "preferredLanguage",
            "The User's preferred written or spoken language.",
        ),
        s(
            "locale",
            "The User's default location, for localizing items.",
        ),
        s(
            "timezone",
            "The User's time zone in the IANA Time Zone database format.",
        ),
        attr("active", Type::Boolean, "The User's administrative status."),
        Attribute {
            mutability: Mutability::WriteOnly,
            returned: Returned::Never,
            case_exact: true,
            ..s(
                "password",
                "The User's cleartext password; never returned. Roster does not store it.",
            )
        },
        multi(complex(
            "emails",
            "Email addresses for the user.",
            plural!(
                s("value", "Email address for the user."),
                &["work", "home", "other"]
            ),
        )),
        multi(complex(
            "phoneNumbers",
            "Phone numbers for the User.",
            plural!(
                s("value", "Phone number of the User."),
                &["work", "home", "mobile", "fax", "pager", "other"]
            ),
        )),
        multi(complex(
            "ims",
            "Instant messaging addresses for the User.",
            plural!(
                s("value", "Instant messaging address for the User."),
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
            ),
        )),
        multi(complex(
            "photos",
            "URLs of photos of the User.",
            plural!(
                reference("value", "URL of a photo of the User.", &["external"]),
                &["photo", "thumbnail"]
            ),
        )),
        multi(complex(
            "addresses",
            "A physical mailing address for this User.",
            &[
                s(
                    "formatted",
                    "The full mailing address, formatted for display.",
                ),
                s("streetAddress", "The full street address component."),
                s("locality", "The city or locality component."),
                s("region", "The state or region component."),
                s("postalCode", "The zip code or postal code component."),
                s("country", "The country name component."),
                typed(
                    s("type", "A label indicating the attribute's function."),
                    &["work", "home", "other"],
                ),
                PRIMARY,
            ],
        )),
        read_only(multi(complex(
            "groups",
            "The groups the user belongs to (read-only).",
            &[
                read_only(s("value", "The identifier of the User's group.")),
                read_only(reference("$ref", "The URI of the group.", &["Group"])),
                read_only(DISPLAY),
                read_only(typed(
                    s("type", "How the membership is derived."),
                    &["direct", "indirect"],
                )),
            ],
        ))),
        multi(complex(
            "entitlements",
            "A list of entitlements for the User.",
            plural!(s("value", "The value of an entitlement."), &[]),
        )),
        multi(complex(
            "roles",
            "A list of roles for the User.",
            plural!(s("value", "The value of a role."), &[]),
        )),
        multi(complex(
            "x509Certificates",
            "A list of certificates issued to the User.",
            plural!(
                attr("value", Type::Binary, "The value of an X.509 certificate."),
                &[]
            ),
        )),
    ],
};

pub static GROUP_SCHEMA: Schema = Schema {
    id: GROUP,
    name: "Group",
    description: "Group",
    attributes: &[
        Attribute {
            required: true,
            uniqueness: "server",
            ..s(
                "displayName",
                "A human-readable name for the Group; unique per directory.",
            )
        },
        multi(complex(
            "members",
            "A list of members of the Group.",
            &[
                Attribute {
                    mutability: Mutability::Immutable,
                    ..s("value", "Identifier of the member of this Group.")
                },
                Attribute {
                    mutability: Mutability::Immutable,
                    ..reference("$ref", "The URI of the member.", &["User", "Group"])
                },
                read_only(DISPLAY),
                Attribute {
                    mutability: Mutability::Immutable,
                    ..typed(s("type", "The type of the member."), &["User", "Group"])
                },
            ],
        )),
    ],
};

pub static ENTERPRISE_USER_SCHEMA: Schema = Schema {
    id: ENTERPRISE_USER,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        s(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person.",
        ),
        s("costCenter", "Identifies the name of a cost center."),
        s("organization", "Identifies the name of an organization."),
        s("division", "Identifies the name of a division."),
        s("department", "Identifies the name of a department."),
        complex(
            "manager",
            "The User's manager.",
            &[
                s(
                    "value",
                    "The id of the SCIM resource representing the User's manager.",
                ),
                reference("$ref", "The URI of the manager's SCIM resource.", &["User"]),
                read_only(s("displayName", "The displayName of the User's manager.")),
            ],
        ),
    ],
};

/// Every schema Roster serves.
pub fn all() -> [&'static Schema; 3] {
    [&USER_SCHEMA, &GROUP_SCHEMA, &ENTERPRISE_USER_SCHEMA]
}

/// The schema with this URN (case-insensitively).
pub fn by_id(urn: &str) -> Option<&'static Schema> {
    all().into_iter().find(|s| s.id.eq_ignore_ascii_case(urn))
}

impl Schema {
    /// The attribute called `name` (case-insensitively).
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

impl Attribute {
    pub fn sub(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// RFC 7643 §7 representation.
    pub fn to_json(&self) -> Value {
        let t = match self.kind {
            Type::String => "string",
            Type::Boolean => "boolean",
            Type::Decimal => "decimal",
            Type::Integer => "integer",
            Type::DateTime => "dateTime",
            Type::Binary => "binary",
            Type::Reference => "reference",
            Type::Complex => "complex",
        };
        let mut v = json!({
            "name": self.name,
            "type": t,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": match self.mutability {
                Mutability::ReadOnly => "readOnly",
                Mutability::ReadWrite => "readWrite",
                Mutability::Immutable => "immutable",
                Mutability::WriteOnly => "writeOnly",
            },
            "returned": match self.returned {
                Returned::Always => "always",
                Returned::Never => "never",
                Returned::Default => "default",
            },
            "uniqueness": self.uniqueness,
        });
        if !self.sub_attributes.is_empty() {
            v["subAttributes"] = self.sub_attributes.iter().map(Attribute::to_json).collect();
        }
        if !self.canonical_values.is_empty() {
            v["canonicalValues"] = json!(self.canonical_values);
        }
        if !self.reference_types.is_empty() {
            v["referenceTypes"] = json!(self.reference_types);
        }
        v
    }
}

/// Whether comparisons on `attr` (with optional sub-attribute) under `schema` are
/// case-exact. `id`, `externalId` and `meta.version` are (RFC 7643 §3.1); otherwise the
/// schema says; unknown attributes are not.
pub fn case_exact(
    schema: Option<&str>,
    core: &'static Schema,
    attr: &str,
    sub: Option<&str>,
) -> bool {
    if schema.is_none() || schema.is_some_and(|s| s.eq_ignore_ascii_case(core.id)) {
        if attr.eq_ignore_ascii_case("id") || attr.eq_ignore_ascii_case("externalId") {
            return sub.is_none();
        }
        if attr.eq_ignore_ascii_case("meta") {
            return sub.is_some_and(|s| s.eq_ignore_ascii_case("version"));
        }
    }
    let schema = match schema {
        Some(urn) => match by_id(urn) {
            Some(s) => s,
            None => return false,
        },
        None => core,
    };
    let Some(a) = schema.attribute(attr) else {
        return false;
    };
    match sub {
        None => a.sub("value").map_or(a.case_exact, |v| v.case_exact),
        Some(s) => a.sub(s).is_some_and(|x| x.case_exact),
    }
}

/// Rewrites the keys of a resource document to the schemas' spelling (`USERNAME` becomes
/// `userName`, `Name.GivenName` becomes `name.givenName`, the enterprise URN key is matched
/// case-insensitively). Keys no schema defines are kept as sent.
pub fn canonicalize(doc: Map<String, Value>, core: &'static Schema) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in doc {
        if let Some(ext) = by_id(&k).filter(|s| s.id != core.id) {
            let v = match v {
                Value::Object(m) => Value::Object(canonical_attrs(m, ext.attributes)),
                other => other,
            };
            out.insert(ext.id.to_owned(), v);
            continue;
        }
        match core.attribute(&k) {
            Some(a) => {
                out.insert(a.name.to_owned(), canonical_value(v, a));
            }
            None => {
                out.insert(k, v);
            }
        }
    }
    out
}

fn canonical_attrs(m: Map<String, Value>, attrs: &'static [Attribute]) -> Map<String, Value> {
    m.into_iter()
        .map(
            |(k, v)| match attrs.iter().find(|a| a.name.eq_ignore_ascii_case(&k)) {
                Some(a) => (a.name.to_owned(), canonical_value(v, a)),
                None => (k, v),
            },
        )
        .collect()
}

fn canonical_value(v: Value, a: &'static Attribute) -> Value {
    if a.sub_attributes.is_empty() {
        return v;
    }
    match v {
        Value::Object(m) => Value::Object(canonical_attrs(m, a.sub_attributes)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|i| canonical_value(i, a)).collect())
        }
        other => other,
    }
}

/// Checks a declaration: a URN id that is not one of the built-in schemas, attribute names
/// that are attribute names, types, mutabilities and the like from RFC 7643's lists, and
/// sub-attributes only one level deep and only under complex attributes.
///
/// Fails with a message fit for the operator.
pub fn validate_declared(d: &DeclaredSchema) -> Result<(), String> {
    if !d
        .id
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        || d.id.contains(char::is_whitespace)
    {
        return Err(format!("schema id {:?} must be a URN", d.id));
    }
    if by_id(&d.id).is_some() {
        return Err(format!("{} is built in and cannot be declared", d.id));
    }
    if d.attributes.is_empty() {
        return Err("a schema needs at least one attribute".into());
    }
    fn check(a: &DeclaredAttribute, depth: usize) -> Result<(), String> {
        let valid_name = a
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && a.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
        if !valid_name {
            return Err(format!("{:?} is not an attribute name", a.name));
        }
        let types = [
            "string",
            "boolean",
            "decimal",
            "integer",
            "dateTime",
            "binary",
            "reference",
            "complex",
        ];
        if !types.contains(&a.kind.as_str()) {
            return Err(format!(
                "{}: type {:?} is not one of {types:?}",
                a.name, a.kind
            ));
        }
        if !["readOnly", "readWrite", "immutable", "writeOnly"].contains(&a.mutability.as_str()) {
            return Err(format!(
                "{}: mutability {:?} is not valid",
                a.name, a.mutability
            ));
        }
        if !["always", "never", "default", "request"].contains(&a.returned.as_str()) {
            return Err(format!(
                "{}: returned {:?} is not valid",
                a.name, a.returned
            ));
        }
        if !["none", "server", "global"].contains(&a.uniqueness.as_str()) {
            return Err(format!(
                "{}: uniqueness {:?} is not valid",
                a.name, a.uniqueness
            ));
        }
        if !a.sub_attributes.is_empty() && (a.kind != "complex" || depth > 0) {
            return Err(format!(
                "{}: only a top-level complex attribute has sub-attributes",
                a.name
            ));
        }
        a.sub_attributes
            .iter()
            .try_for_each(|s| check(s, depth + 1))
    }
    d.attributes.iter().try_for_each(|a| check(a, 0))
}

/// Canonicalizes the attributes of a declared extension's object.
fn canonical_declared(m: Map<String, Value>, attrs: &[DeclaredAttribute]) -> Map<String, Value> {
    m.into_iter()
        .map(
            |(k, v)| match attrs.iter().find(|a| a.name.eq_ignore_ascii_case(&k)) {
                Some(a) if !a.sub_attributes.is_empty() => {
                    let v = match v {
                        Value::Object(o) => Value::Object(canonical_declared(o, &a.sub_attributes)),
                        Value::Array(items) => Value::Array(
                            items
                                .into_iter()
                                .map(|i| match i {
                                    Value::Object(o) => {
                                        Value::Object(canonical_declared(o, &a.sub_attributes))
                                    }
                                    other => other,
                                })
                                .collect(),
                        ),
                        other => other,
                    };
                    (a.name.clone(), v)
                }
                Some(a) => (a.name.clone(), v),
                None => (k, v),
            },
        )
        .collect()
}

/// Like [`canonicalize`], also spelling the URN keys and attribute names of extensions the
/// source declared as their declarations do.
pub fn canonicalize_with(
    doc: Map<String, Value>,
    core: &'static Schema,
    declared: &[DeclaredSchema],
) -> Map<String, Value> {
    let mut rest = Map::new();
    let mut out = Map::new();
    for (k, v) in doc {
        match declared.iter().find(|d| d.id.eq_ignore_ascii_case(&k)) {
            Some(d) => {
                let v = match v {
                    Value::Object(m) => Value::Object(canonical_declared(m, &d.attributes)),
                    other => other,
                };
                out.insert(d.id.clone(), v);
            }
            None => {
                rest.insert(k, v);
            }
        }
    }
    let mut canon = canonicalize(rest, core);
    canon.extend(out);
    canon
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonicalized_and_unknown_ones_kept() {
        let doc = json!({
            "USERNAME": "a", "Name": {"GIVENNAME": "A"}, "emails": [{"Value": "x", "TYPE": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"DEPARTMENT": "d"},
            "custom": 1
        });
        let out = canonicalize(doc.as_object().unwrap().clone(), &USER_SCHEMA);
        assert_eq!(
            Value::Object(out),
            json!({
                "userName": "a", "name": {"givenName": "A"}, "emails": [{"value": "x", "type": "work"}],
                ENTERPRISE_USER: {"department": "d"}, "custom": 1
            })
        );
    }

    #[test]
    fn case_exactness_follows_the_schema() {
        assert!(case_exact(None, &USER_SCHEMA, "id", None));
        assert!(case_exact(None, &USER_SCHEMA, "externalId", None));
        assert!(!case_exact(None, &USER_SCHEMA, "userName", None));
        assert!(!case_exact(None, &USER_SCHEMA, "emails", Some("value")));
        assert!(case_exact(None, &USER_SCHEMA, "meta", Some("version")));
        assert!(!case_exact(
            Some(ENTERPRISE_USER),
            &USER_SCHEMA,
            "employeeNumber",
            None
        ));
    }

    #[test]
    fn schemas_render_as_rfc_7643_section_7() {
        let a = USER_SCHEMA.attribute("emails").unwrap().to_json();
        assert_eq!(a["multiValued"], true);
        assert_eq!(a["subAttributes"].as_array().unwrap().len(), 4);
        assert_eq!(
            USER_SCHEMA.attribute("password").unwrap().to_json()["returned"],
            "never"
        );
    }
}
