use super::*;
use proptest::prelude::*;
use roster_events::UndeclaredExtensions;
use roster_projections::filter::Op;
use roster_projections::schema::ENTERPRISE_USER;
use serde_json::json;

#[derive(Clone, Copy)]
enum Kind {
    User,
    Group,
}

fn schemas(kind: Kind) -> ResourceSchemas<'static> {
    match kind {
        Kind::User => ResourceSchemas::user(&[], UndeclaredExtensions::Refuse),
        Kind::Group => ResourceSchemas::group(&[], UndeclaredExtensions::Refuse),
    }
}

fn run(doc: Value, body: Value, kind: Kind) -> Result<Value, PatchError> {
    let s = schemas(kind);
    let ops = parse_request(body.as_object().unwrap(), &s)?;
    let (ops, members) = match kind {
        Kind::Group => split_members(ops)?,
        Kind::User => (ops, vec![]),
    };
    assert!(
        members.is_empty(),
        "member operations are tested on their own"
    );
    let out = apply(doc.as_object().unwrap().clone(), &ops, &s)?;
    Ok(Value::Object(out.into_map()))
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ada@example.com", "active": true, "title": "eng",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"type": "work", "value": "ada@work.example", "primary": true}]
    })
}

fn ops(list: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": list})
}

#[test]
fn entra_replace_add_with_filter_and_string_booleans() {
    let out = run(user(), ops(json!([
        {"op": "Replace", "path": "title", "value": "tester"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "new@work.example"},
        {"op": "Replace", "path": "name.familyName", "value": "Byron"},
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "mgr-1"}
    ])), Kind::User).unwrap();
    assert_eq!(out["title"], "tester");
    assert_eq!(
        out["emails"],
        json!([{"type": "work", "value": "new@work.example", "primary": true}])
    );
    assert_eq!(
        out["name"],
        json!({"givenName": "Ada", "familyName": "Byron"})
    );
    assert_eq!(out["active"], false);
    assert_eq!(out[ENTERPRISE_USER]["department"], "R&D");
    assert!(out["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == ENTERPRISE_USER));
}

#[test]
fn a_filtered_add_that_matches_nothing_creates_the_element() {
    let out = run(
        user(),
        ops(json!([
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "ada@home.example"},
            {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}
        ])),
        Kind::User,
    )
    .unwrap();
    assert_eq!(out["emails"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["emails"][1],
        json!({"type": "home", "value": "ada@home.example"})
    );
    assert_eq!(
        out["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555"}])
    );
}

#[test]
fn pathless_operations_take_dotted_and_urn_keys() {
    let out = run(user(), ops(json!([
        {"op": "replace", "value": {"active": false}},
        {"op": "Replace", "value": {
            "name.givenName": "Augusta",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
            "DISPLAYNAME": "Ada L."
        }},
        {"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"costCenter": "7"}}}
    ])), Kind::User).unwrap();
    assert_eq!(out["active"], false);
    assert_eq!(out["name"]["givenName"], "Augusta");
    assert_eq!(
        out[ENTERPRISE_USER],
        json!({"employeeNumber": "42", "costCenter": "7"})
    );
    assert_eq!(
        out["displayName"], "Ada L.",
        "a new attribute is stored as the schema spells it"
    );
}

#[test]
fn attribute_names_match_existing_ones_case_insensitively() {
    let out = run(
        user(),
        ops(json!([{"op": "replace", "path": "NAME.GIVENNAME", "value": "A"}])),
        Kind::User,
    )
    .unwrap();
    assert_eq!(
        out["name"],
        json!({"givenName": "A", "familyName": "Lovelace"})
    );
}

#[test]
fn member_changes_in_every_dialect_become_set_operations() {
    let s = schemas(Kind::Group);
    let parsed = parse_request(
        ops(json!([
            {"op": "Add", "path": "members", "value": [{"value": "d", "display": "D"}, {"value": "a", "$ref": null}]},
            {"op": "Remove", "path": "members", "value": [{"value": "b"}]},
            {"op": "remove", "path": "members[value eq \"c\"]"},
            {"op": "remove", "path": "members[type eq \"Group\"]"},
            {"op": "replace", "value": {"displayName": "G2", "members": [{"value": "z", "type": "User"}]}},
            {"op": "remove", "path": "members"}
        ]))
        .as_object()
        .unwrap(),
        &s,
    )
    .unwrap();
    let (doc, members) = split_members(parsed).unwrap();
    assert_eq!(doc.len(), 1, "the rename stays a document operation");
    let r = |v: &str, k: Option<&str>| MemberRef {
        value: v.into(),
        kind: k.map(str::to_owned),
    };
    assert_eq!(
        members[..3],
        [
            MemberOp::Add(vec![r("d", None), r("a", None)]),
            MemberOp::Remove(vec!["b".into()]),
            MemberOp::Remove(vec!["c".into()]),
        ]
    );
    assert!(matches!(members[3], MemberOp::RemoveWhere(_)));
    assert_eq!(members[4], MemberOp::Replace(vec![r("z", Some("User"))]));
    assert_eq!(members[5], MemberOp::Clear);
    let bad = parse_request(
        ops(json!([{"op": "replace", "path": "members[value eq \"a\"].value", "value": "b"}]))
            .as_object()
            .unwrap(),
        &s,
    )
    .and_then(split_members);
    assert_eq!(bad.unwrap_err().scim_type, "invalidPath");
}

#[test]
fn only_one_primary_remains() {
    let out = run(user(), ops(json!([
        {"op": "add", "path": "emails", "value": [{"type": "home", "value": "h@x", "primary": "True"}]}
    ])), Kind::User).unwrap();
    let prim: Vec<bool> = out["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["primary"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(prim, [false, true]);
}

#[test]
fn a_whole_extension_is_added_replaced_and_removed_by_its_urn() {
    let out = run(user(), ops(json!([
        {"op": "add", "path": ENTERPRISE_USER, "value": {"employeeNumber": "7", "department": "R&D"}}
    ])), Kind::User).unwrap();
    assert_eq!(
        out[ENTERPRISE_USER],
        json!({"employeeNumber": "7", "department": "R&D"})
    );
    assert_eq!(
        out["schemas"],
        json!([
            "urn:ietf:params:scim:schemas:core:2.0:User",
            ENTERPRISE_USER
        ])
    );
    assert!(out
        .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0")
        .is_none());
    let replaced = run(
        out.clone(),
        ops(json!([
            {"op": "replace", "path": ENTERPRISE_USER, "value": {"employeeNumber": "8"}}
        ])),
        Kind::User,
    )
    .unwrap();
    assert_eq!(
        replaced[ENTERPRISE_USER],
        json!({"employeeNumber": "8", "department": "R&D"})
    );
    let removed = run(
        out,
        ops(json!([{"op": "remove", "path": ENTERPRISE_USER}])),
        Kind::User,
    )
    .unwrap();
    assert!(removed.get(ENTERPRISE_USER).is_none());
    assert_eq!(
        removed["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
}

#[test]
fn entra_sets_and_clears_the_manager_in_its_own_forms() {
    let set = run(
        user(),
        ops(json!([
            {"op": "Add", "path": "manager", "value": [{"$ref": null, "value": "boss-1"}]}
        ])),
        Kind::User,
    )
    .unwrap();
    assert_eq!(
        set[ENTERPRISE_USER],
        json!({"manager": {"value": "boss-1"}})
    );
    let bare = run(
        user(),
        ops(json!([
            {"op": "Replace", "path": "manager", "value": "boss-2"}
        ])),
        Kind::User,
    )
    .unwrap();
    assert_eq!(bare[ENTERPRISE_USER]["manager"], json!({"value": "boss-2"}));
    let kept = run(
        set.clone(),
        ops(json!([
            {"op": "remove", "path": "manager[value eq \"someone-else\"]"}
        ])),
        Kind::User,
    )
    .unwrap();
    assert_eq!(kept[ENTERPRISE_USER]["manager"]["value"], "boss-1");
    let cleared = run(
        set,
        ops(json!([
            {"op": "remove", "path": "manager[value eq \"boss-1\"]"}
        ])),
        Kind::User,
    )
    .unwrap();
    assert!(cleared.get(ENTERPRISE_USER).is_none(), "{cleared}");
}

#[test]
fn replacing_a_complex_attribute_keeps_the_sub_attributes_not_named() {
    let out = run(
        user(),
        ops(json!([
            {"op": "replace", "path": "name", "value": {"givenName": "Augusta"}},
            {"op": "replace", "value": {"name": {"middleName": "Ada"}}}
        ])),
        Kind::User,
    )
    .unwrap();
    assert_eq!(
        out["name"],
        json!({"givenName": "Augusta", "middleName": "Ada", "familyName": "Lovelace"})
    );
}

#[test]
fn an_unknown_path_or_a_wrong_type_fails_the_whole_request() {
    for (list, want) in [
        (
            json!([{"op": "replace", "path": "title", "value": "x"}, {"op": "replace", "path": "nosuch", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "name.nosuch", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "value": {"nosuch": 1}}]),
            "invalidPath",
        ),
        (
            json!([{"op": "add", "path": "urn:acme:ext:2.0:User:x", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "active", "value": "yes"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "add", "path": "emails", "value": "a@b.c"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "title[value eq \"x\"]", "value": "y"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "groups", "value": []}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "schemas", "value": []}]),
            "mutability",
        ),
    ] {
        let r = run(user(), ops(list.clone()), Kind::User);
        assert_eq!(r.map_err(|e| e.scim_type), Err(want), "{list}");
    }
}

#[test]
fn errors_carry_the_rfc_scim_type() {
    let cases = [
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "meta.created", "value": "x"}]),
            "mutability",
        ),
        (json!([{"op": "remove"}]), "noTarget"),
        (
            json!([{"op": "replace", "path": "emails[type zz \"work\"]", "value": {}}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "a.b.c", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "jump", "path": "title", "value": 1}]),
            "invalidSyntax",
        ),
        (json!([{"op": "add", "path": "title"}]), "invalidValue"),
        (
            json!([{"op": "add", "value": "not an object"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "emails.value", "value": "x"}]),
            "invalidPath",
        ),
    ];
    for (list, want) in cases {
        let r = run(user(), ops(list.clone()), Kind::User);
        assert_eq!(r.map_err(|e| e.scim_type), Err(want), "{list}");
    }
    // A filter that is not only `eq` is fine when it matches: it changes that element.
    let matched = run(
        user(),
        ops(
            json!([{"op": "replace", "path": "emails[type eq \"work\" or type eq \"home\"].value", "value": "x"}]),
        ),
        Kind::User,
    );
    assert_eq!(matched.unwrap()["emails"][0]["value"], "x");
    let no_target = run(
        user(),
        ops(json!([{"op": "replace", "path": "emails[value co \"zzz\"].value", "value": "x"}])),
        Kind::User,
    );
    assert_eq!(no_target.unwrap_err().scim_type, "noTarget");
    assert_eq!(
        parse_request(
            json!({"Operations": "x"}).as_object().unwrap(),
            &schemas(Kind::User)
        )
        .unwrap_err()
        .scim_type,
        "invalidSyntax"
    );
    assert_eq!(
        parse_request(
            json!({"schemas": ["urn:nope"], "Operations": []})
                .as_object()
                .unwrap(),
            &schemas(Kind::User)
        )
        .unwrap_err()
        .scim_type,
        "invalidSyntax"
    );
}

fn arb_patch_path() -> impl Strategy<Value = PatchPath> {
    let name = || {
        "[a-zA-Z][a-zA-Z0-9]{0,8}".prop_filter("not a keyword", |n: &String| {
            !["not", "and", "or", "pr"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(n))
        })
    };
    let schema = prop_oneof![Just(None), Just(Some(ENTERPRISE_USER.to_owned()))];
    let value = "\\PC{0,10}";
    let filter = (name(), value).prop_map(|(a, v)| Filter::Compare {
        path: AttrPath {
            schema: None,
            attr: a,
            sub: None,
        },
        op: Op::Eq,
        value: Value::String(v),
    });
    prop_oneof![
        (schema.clone(), name(), prop::option::of(name())).prop_map(|(schema, attr, sub)| {
            PatchPath {
                attr: AttrPath { schema, attr, sub },
                filter: None,
                sub_after: None,
            }
        }),
        (schema, name(), filter, prop::option::of(name())).prop_map(
            |(schema, attr, f, sub_after)| PatchPath {
                attr: AttrPath {
                    schema,
                    attr,
                    sub: None
                },
                filter: Some(f),
                sub_after,
            }
        ),
    ]
}

proptest! {
    #[test]
    fn printing_then_parsing_gives_the_same_path(p in arb_patch_path()) {
        let text = p.to_string();
        prop_assert_eq!(parse_path(&text).map_err(|e| format!("{text}: {e}")), Ok(p));
    }

    #[test]
    fn the_path_parser_never_panics(s in "\\PC{0,60}") {
        let _ = parse_path(&s);
    }

    #[test]
    fn the_path_parser_never_panics_on_path_like_text(s in r#"[a-zA-Z:.\[\]" ]{0,12}(\[[a-z]{1,5} (eq|co|pr) "[a-z]{0,4}"\])?(\.[a-zA-Z]{0,5})?"#) {
        if let Ok(p) = parse_path(&s) {
            let doc = user().as_object().unwrap().clone();
            let s = schemas(Kind::User);
            for op in [OpKind::Add, OpKind::Replace, OpKind::Remove] {
                let _ = apply(doc.clone(), &[PatchOp { op, path: Some(p.clone()), value: Some(json!("v")) }], &s);
                if let Ok(p) = resolve(p.clone(), &s) {
                    let _ = apply(doc.clone(), &[PatchOp { op, path: Some(p), value: Some(json!("v")) }], &s);
                }
            }
        }
    }
}
