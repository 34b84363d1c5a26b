//! A provider's property mappings applied after the built-in mapping: the built-in document
//! first, then each of the provider's mappings in order, its attributes deep-merged over what
//! came before (a null removes an attribute), any of them able to skip the object. The result
//! keeps what Roster needs of it (`externalId` is Roster's id, `schemas` lists what the
//! document holds) and must still name the object (`userName`, `displayName`) and be a valid
//! SCIM user or group.

use super::mapping::{DefaultMapping, Mapping, MappingFailed};
use crate::mappings::expression::without_nulls;
use crate::mappings::{
    group_object, list_schemas, merge, user_object, Expression, Needs, Outcome, Variables,
};
use roster_events::{MappingKind, ProviderConfig};
use roster_projections::{GroupView, MappingView, UserView};
use serde_json::{Map, Value};

/// One of the provider's mappings, compiled.
struct Step {
    name: String,
    expression: Expression,
}

/// The mappings of one kind, with what they read of the object together.
#[derive(Default)]
struct Steps {
    list: Vec<Step>,
    needs: Needs,
}

/// The built-in mapping followed by a provider's mappings.
pub struct Chain {
    users: Steps,
    groups: Steps,
    provider: String,
    mode: String,
}

impl Chain {
    /// The chain `config` names, from the mappings defined in its directory.
    ///
    /// Fails, naming the mapping, when one is missing or its stored expression no longer
    /// compiles.
    pub fn resolve(config: &ProviderConfig, defined: &[MappingView]) -> Result<Chain, String> {
        let mut chain = Chain {
            users: Steps::default(),
            groups: Steps::default(),
            provider: config.name.clone(),
            mode: super::config::mode_name(config.mode),
        };
        for name in &config.mappings {
            let m = defined
                .iter()
                .find(|m| &m.mapping.name == name)
                .ok_or_else(|| format!("mapping {name:?} is not defined"))?;
            let expression = Expression::compile(&m.mapping.expression)
                .map_err(|e| format!("mapping {name:?}: {e}"))?;
            let step = Step {
                name: name.clone(),
                expression,
            };
            match m.mapping.kind {
                MappingKind::ProviderUser => chain.users.list.push(step),
                MappingKind::ProviderGroup => chain.groups.list.push(step),
                other => {
                    return Err(format!(
                        "mapping {name:?} is a {} mapping, not a provider's",
                        other.as_str()
                    ))
                }
            }
        }
        for steps in [&mut chain.users, &mut chain.groups] {
            steps.needs = Needs::union(steps.list.iter().map(|s| s.expression.needs()));
        }
        Ok(chain)
    }

    /// Runs `steps` on `object` over `base`.
    fn apply(
        &self,
        kind: MappingKind,
        steps: &Steps,
        object: &Value,
        mut base: Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, MappingFailed> {
        let vars = Variables {
            kind,
            object,
            existing: None,
            source: None,
            provider: Some((self.provider.as_str(), self.mode.as_str())),
        };
        let Some(last) = steps.list.last() else {
            return Ok(Some(base));
        };
        // Converted once for every step.
        let bindings = vars.bindings(&steps.needs);
        for step in &steps.list {
            match step.expression.evaluate_in(&bindings) {
                Ok(Outcome::Skip) => return Ok(None),
                Ok(Outcome::Attributes(attributes)) => merge(&mut base, attributes),
                Err(e) => {
                    return Err(MappingFailed {
                        mapping: step.name.clone(),
                        message: e.to_string(),
                    })
                }
            }
        }
        let mut out = without_nulls(base);
        let naming = if kind.users() {
            "userName"
        } else {
            "displayName"
        };
        if !out.get(naming).is_some_and(Value::is_string) {
            return Err(MappingFailed {
                mapping: last.name.clone(),
                message: format!("the result has no {naming}, which the remote needs"),
            });
        }
        list_schemas(&mut out);
        check_shape(kind, &out).map_err(|detail| MappingFailed {
            mapping: last.name.clone(),
            message: format!(
                "the result is not a valid SCIM {}: {detail}",
                kind_name(kind)
            ),
        })?;
        Ok(Some(out))
    }
}

fn kind_name(kind: MappingKind) -> &'static str {
    if kind.users() {
        "user"
    } else {
        "group"
    }
}

/// Whether `doc` is a user (or group) as the SCIM schemas have it: types, multi-valued
/// attributes, known attribute names; extensions other than Roster's pass as they are (a
/// mapping may send a remote's own). Members are Roster's and not checked here.
fn check_shape(kind: MappingKind, doc: &Map<String, Value>) -> Result<(), String> {
    use roster_events::UndeclaredExtensions::Keep;
    use roster_projections::schema::ResourceSchemas;
    let mut doc = doc.clone();
    let schemas = if kind.users() {
        ResourceSchemas::user(&[], Keep)
    } else {
        doc.remove("members");
        ResourceSchemas::group(&[], Keep)
    };
    schemas.check(doc).map(|_| ()).map_err(|e| e.detail)
}

impl Mapping for Chain {
    fn user(&self, user: &UserView) -> Result<Option<Map<String, Value>>, MappingFailed> {
        if self.users.list.is_empty() {
            return DefaultMapping.user(user);
        }
        let base = DefaultMapping.user_document(user);
        let mut out = self.apply(
            MappingKind::ProviderUser,
            &self.users,
            &user_object(user),
            base,
        )?;
        // Full syncs find the objects Roster created by it.
        if let Some(doc) = &mut out {
            doc.insert("externalId".into(), user.id.to_string().into());
        }
        Ok(out)
    }

    fn group(
        &self,
        group: &GroupView,
        members: Vec<Value>,
    ) -> Result<Option<Map<String, Value>>, MappingFailed> {
        if self.groups.list.is_empty() {
            return DefaultMapping.group(group, members);
        }
        let seen = group_object(group);
        let base = DefaultMapping.group_document(group, members.clone());
        let mut out = self.apply(MappingKind::ProviderGroup, &self.groups, &seen, base)?;
        if let Some(doc) = &mut out {
            doc.insert("externalId".into(), group.id.to_string().into());
            // Members are Roster's to send: the remote's ids, as the mode shapes them.
            doc.insert("members".into(), Value::Array(members));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_events::{Document, MappingDef, ResourceId};
    use roster_projections::Keys;
    use serde_json::json;

    fn view(name: &str, kind: MappingKind, expression: &str) -> MappingView {
        MappingView {
            id: ResourceId::new(),
            mapping: MappingDef {
                name: name.into(),
                kind,
                expression: expression.into(),
                description: String::new(),
            },
            version: 1,
            created: chrono::Utc::now(),
            last_modified: chrono::Utc::now(),
        }
    }

    fn config(mappings: &[&str]) -> ProviderConfig {
        serde_json::from_value(json!({
            "name": "slack", "base_url": "https://x.example/scim/v2",
            "auth": {"type": "bearer", "token": "v1:x"}, "mode": "slack",
            "scope": {"exclude_service_accounts": false, "group_filter": [], "access_groups": []},
            "full_sync_interval_secs": 0, "concurrency": 1, "deactivate": false,
            "dry_run": false, "enabled": true, "mappings": mappings,
        }))
        .unwrap()
    }

    fn user(doc: Value) -> UserView {
        UserView {
            id: ResourceId::new(),
            owner: None,
            keys: Keys::default(),
            resource: Document::from_map(doc.as_object().unwrap()),
            password_hash: None,
            data_key: None,
            version: 1,
            created: chrono::Utc::now(),
            last_modified: chrono::Utc::now(),
        }
    }

    #[test]
    fn mappings_merge_in_order_over_the_built_in_document() {
        let defined = [
            view(
                "names",
                MappingKind::ProviderUser,
                r#"{"displayName": user.name.givenName + " " + user.name.familyName,
                    "name": {"formatted": user.name.givenName}, "title": null}"#,
            ),
            view(
                "department",
                MappingKind::ProviderUser,
                r#"{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                      {"department": provider.mode + "-" + user.title}}"#,
            ),
        ];
        let chain = Chain::resolve(&config(&["names", "department"]), &defined).unwrap();
        let u = user(json!({
            "userName": "ada@example.com", "title": "Eng",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "externalId": "from-entra",
        }));
        let out = chain.user(&u).unwrap().unwrap();
        assert_eq!(
            Value::Object(out),
            json!({
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
                ],
                "userName": "ada@example.com",
                "displayName": "Ada Lovelace",
                "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada"},
                "externalId": u.id.to_string(),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                    {"department": "slack-Eng"},
            })
        );
    }

    #[test]
    fn skip_errors_and_a_lost_name_are_told_apart() {
        let defined = [
            view(
                "contractors",
                MappingKind::ProviderUser,
                r#"has(user.userType) ? skip : {}"#,
            ),
            view(
                "careless",
                MappingKind::ProviderUser,
                r#"{"nickName": user.nickName}"#,
            ),
            view(
                "nameless",
                MappingKind::ProviderUser,
                r#"{"userName": null}"#,
            ),
            view("groups", MappingKind::ProviderGroup, "{}"),
            view("inbound", MappingKind::SourceUser, "{}"),
            view(
                "shapeless",
                MappingKind::ProviderUser,
                r#"{"emails": user.userName}"#,
            ),
            view(
                "custom",
                MappingKind::ProviderUser,
                r#"{"urn:example:remote:2.0:User": {"team": "a"}, "active": "True"}"#,
            ),
        ];
        let chain = Chain::resolve(&config(&["contractors"]), &defined).unwrap();
        let contractor = user(json!({"userName": "c", "userType": "Contractor"}));
        assert_eq!(chain.user(&contractor).unwrap(), None);

        let chain = Chain::resolve(&config(&["careless"]), &defined).unwrap();
        let e = chain.user(&user(json!({"userName": "u"}))).unwrap_err();
        assert_eq!(e.mapping, "careless");
        assert!(e.message.contains("nickName"), "{e}");

        let chain = Chain::resolve(&config(&["nameless"]), &defined).unwrap();
        let e = chain.user(&user(json!({"userName": "u"}))).unwrap_err();
        assert!(e.message.contains("no userName"), "{e}");

        // The result is checked against the SCIM schemas; a remote's own extension passes.
        let chain = Chain::resolve(&config(&["shapeless"]), &defined).unwrap();
        let e = chain.user(&user(json!({"userName": "u"}))).unwrap_err();
        assert_eq!(e.mapping, "shapeless");
        assert!(e.message.contains("not a valid SCIM user"), "{e}");
        let chain = Chain::resolve(&config(&["custom"]), &defined).unwrap();
        let out = chain
            .user(&user(json!({"userName": "u"})))
            .unwrap()
            .unwrap();
        assert_eq!(out["urn:example:remote:2.0:User"]["team"], "a");

        // A group mapping leaves users alone; a source's mapping or a missing one is refused.
        let chain = Chain::resolve(&config(&["groups"]), &defined).unwrap();
        assert!(chain
            .user(&user(json!({"userName": "u"})))
            .unwrap()
            .is_some());
        assert!(Chain::resolve(&config(&["inbound"]), &defined).is_err());
        assert!(Chain::resolve(&config(&["gone"]), &defined).is_err());
    }
}
