use super::*;
use serde_json::json;

fn user() -> ResourceSchemas<'static> {
    ResourceSchemas::user(&[], UndeclaredExtensions::Refuse)
}

fn doc(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn refused(s: &ResourceSchemas<'_>, v: Value) -> String {
    s.check(doc(v)).unwrap_err().detail
}

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[test]
fn wrong_types_and_single_values_for_multi_valued_attributes_are_refused() {
    let u = user();
    for (body, says) in [
        (
            json!({"userName": "x", "active": "yes"}),
            "active must be true or false",
        ),
        (
            json!({"userName": "x", "emails": "a@b.c"}),
            "emails is multi-valued",
        ),
        (
            json!({"userName": "x", "name": "Ada"}),
            "name must be an object",
        ),
        (
            json!({"userName": "x", "addresses": 5}),
            "addresses is multi-valued",
        ),
        (
            json!({"userName": "x", "displayName": {"a": 1}}),
            "displayName must be a string",
        ),
        (json!({"userName": 7}), "userName must be a string"),
        (
            json!({"userName": "x", "nosuch": 1}),
            "nosuch is not an attribute",
        ),
        (
            json!({"userName": "x", "name": {"nosuch": "y"}}),
            "nosuch is not a sub-attribute of name",
        ),
        (
            json!({"userName": "x", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
            "at most one value may be primary",
        ),
        (
            json!({"userName": "x", "x509Certificates": [{"value": "not base64!"}]}),
            "base64",
        ),
        (json!({"displayName": "x"}), "userName is required"),
        (json!({"userName": "   "}), "userName is empty"),
        (json!({"userName": "carol\u{200b}"}), "U+200B"),
        (
            json!({"userName": "x", "schemas": ["urn:nope"]}),
            "schemas must include",
        ),
        (
            json!({"userName": "x", "urn:acme:ext:2.0:User": {"a": 1}}),
            "not an extension schema of this source",
        ),
    ] {
        let why = refused(&u, body.clone());
        assert!(why.contains(says), "{body}: {why}");
    }
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"value": format!("e{i}@x")}))
        .collect();
    assert!(refused(&u, json!({"userName": "x", "emails": many})).contains("at most 100"));
    assert!(refused(&u, json!({"userName": "a".repeat(300)})).contains("longer than 256"));
}

#[test]
fn what_real_clients_send_is_accepted_and_stored_in_one_shape() {
    let u = user();
    let out = u
        .check(doc(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
            "UserName": "ada@example.com",
            "active": "True",
            "id": "client-id", "meta": {"created": "x"}, "groups": [{"value": "g"}],
            "name": {"GivenName": "Ada", "familyName": null},
            "emails": [{"value": "ada@example.com", "type": "work", "primary": "true"}],
            "phoneNumbers": [],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {
                "schemas": [ENT], "Department": "R&D", "manager": "boss-id", "costCenter": null
            }
        })))
        .unwrap();
    assert_eq!(
        Value::Object(out.into_map()),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
            "userName": "ada@example.com",
            "active": true,
            "name": {"givenName": "Ada"},
            "emails": [{"value": "ada@example.com", "type": "work", "primary": true}],
            ENT: {"department": "R&D", "manager": {"value": "boss-id"}}
        })
    );
    // Entra's manager as a one-element array, and URN-qualified attributes at the top.
    let out = u
        .check(doc(json!({
            "userName": "b",
            format!("{ENT}:manager"): [{"$ref": null, "value": "m"}],
            "urn:ietf:params:scim:schemas:core:2.0:User:title": "eng"
        })))
        .unwrap();
    assert_eq!(out.as_map()[ENT], json!({"manager": {"value": "m"}}));
    assert_eq!(out.as_map()["title"], "eng");
    // A listed extension with nothing under it is not listed.
    let out = u
        .check(doc(json!({"userName": "c", "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT]})))
        .unwrap();
    assert_eq!(
        out.as_map()["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
}

#[test]
fn entra_lists_its_own_group_schema_with_nothing_under_it() {
    let g = ResourceSchemas::group(&[], UndeclaredExtensions::Refuse);
    let out = g
        .check(doc(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "displayName": "Sales", "externalId": "e-1"
        })))
        .unwrap();
    assert_eq!(
        out.as_map()["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:Group"])
    );
    assert_eq!(out.as_map()["externalId"], "e-1");
}

#[test]
fn a_source_that_keeps_undeclared_extensions_stores_them_as_sent() {
    let keep = ResourceSchemas::user(&[], UndeclaredExtensions::Keep);
    let out = keep
        .check(doc(
            json!({"userName": "x", "urn:acme:ext:2.0:User": {"a": 1, "b": null}}),
        ))
        .unwrap();
    assert_eq!(out.as_map()["urn:acme:ext:2.0:User"], json!({"a": 1}));
    assert_eq!(
        out.as_map()["schemas"],
        json!([
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:acme:ext:2.0:User"
        ])
    );
}

#[test]
fn declared_extensions_are_typed_by_their_declaration() {
    let declared: Vec<DeclaredSchema> = serde_json::from_value(json!([{
        "id": "urn:acme:ext:2.0:User",
        "attributes": [
            {"name": "badge", "type": "integer"},
            {"name": "sites", "type": "string", "multiValued": true}
        ]
    }]))
    .unwrap();
    let u = ResourceSchemas::user(&declared, UndeclaredExtensions::Refuse);
    let out = u
        .check(doc(
            json!({"userName": "x", "URN:ACME:EXT:2.0:USER": {"BADGE": 7, "sites": ["a"]}}),
        ))
        .unwrap();
    assert_eq!(
        out.as_map()["urn:acme:ext:2.0:User"],
        json!({"badge": 7, "sites": ["a"]})
    );
    let why = refused(
        &u,
        json!({"userName": "x", "urn:acme:ext:2.0:User": {"badge": "seven"}}),
    );
    assert!(why.contains("badge must be an integer"), "{why}");
}

#[test]
fn paths_resolve_to_attributes_extensions_or_nothing() {
    let u = user();
    let p = |s: &str| crate::filter::parse_attr_path(s).unwrap();
    assert!(matches!(u.resolve(&p(ENT)), Ok(Target::Extension(_))));
    assert!(matches!(
        u.resolve(&p(&format!("{ENT}:employeeNumber"))),
        Ok(Target::Attribute {
            extension: Some(_),
            ..
        })
    ));
    assert!(matches!(
        u.resolve(&p("name.givenName")),
        Ok(Target::Attribute { sub: Some(_), .. })
    ));
    assert!(matches!(
        u.resolve(&p("meta.created")),
        Ok(Target::Attribute { .. })
    ));
    for bad in ["nosuch", "name.nosuch", "urn:acme:x:User:y"] {
        assert_eq!(
            u.resolve(&p(bad)).unwrap_err().scim_type,
            "invalidPath",
            "{bad}"
        );
    }
}

#[test]
fn filters_compare_values_of_the_attributes_types() {
    let u = user();
    let f = |s: &str| u.check_filter(&crate::filter::parse(s).unwrap());
    assert!(f(r#"meta.created gt "not-a-date""#).is_err());
    assert!(f(r#"meta.created gt "2026-01-01T00:00:00Z""#).is_ok());
    assert!(f(r#"active eq "yes""#).is_err());
    assert!(f(r#"active eq "True""#).is_ok());
    assert!(f(r#"emails[type eq "work" and primary eq 3]"#).is_err());
    assert!(f(r#"userName eq "a" and not (title co "x")"#).is_ok());
    assert!(
        f(r#"nosuch eq 5"#).is_ok(),
        "unknown attributes match nothing"
    );
}

#[test]
fn changes_to_a_checked_document_are_checked_as_a_whole_document_is() {
    let s = user();
    let base = s
        .check(doc(json!({
            "userName": "a@example.com",
            "active": "True",
            "emails": [{"value": "a@example.com", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
        })))
        .unwrap();
    // Unchanged members pass as they are; a changed one is checked and stored in shape.
    let mut changed = base.as_map().clone();
    changed.insert("active".into(), json!("False"));
    changed.insert("displayName".into(), json!("A"));
    let out = s.check_changes(changed.clone(), &base).unwrap();
    assert_eq!(out, s.check(changed).unwrap());
    assert_eq!(out.get("active"), Some(&json!(false)));
    // A changed member that is wrong is refused as it would be in a request.
    let mut wrong = base.as_map().clone();
    wrong.insert("emails".into(), json!("a@example.com"));
    assert!(s.check_changes(wrong, &base).is_err());
    let mut unknown = base.as_map().clone();
    unknown.insert("shoeSize".into(), json!(9));
    assert!(s.check_changes(unknown, &base).is_err());
    let mut nameless = base.as_map().clone();
    nameless.remove("userName");
    assert!(s.check_changes(nameless, &base).is_err());
}
