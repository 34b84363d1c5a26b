//! Ready-made mappings for downstream apps whose published SCIM requirements go beyond what
//! the built-in mapping sends: a mapping is created from one with `"template": NAME` and is
//! then an ordinary mapping, readable and changeable by the operator.

use super::{MappingError, MappingSettings};

/// A shipped mapping definition.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Template {
    pub name: &'static str,
    pub kind: &'static str,
    pub description: &'static str,
    pub expression: &'static str,
}

/// Every template Roster ships.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "aws-identity-center-user",
        kind: "provider_user",
        description: "AWS IAM Identity Center refuses users without name.givenName, \
                      name.familyName and displayName, and takes at most one email, phone \
                      number and address: fills the names in from the userName when missing \
                      and keeps the primary (or first) of each.",
        expression: r#"{
  "displayName": has(user.displayName) ? user.displayName
      : has(user.name) && has(user.name.givenName) && has(user.name.familyName)
          ? user.name.givenName + " " + user.name.familyName
          : user.userName,
  "name": {
    "givenName": has(user.name) && has(user.name.givenName) ? user.name.givenName
        : user.userName.split("@")[0],
    "familyName": has(user.name) && has(user.name.familyName) ? user.name.familyName
        : user.userName.split("@")[0]
  },
  "emails": !has(user.emails) || size(user.emails) == 0 ? null
      : user.emails.exists(e, has(e.primary) && e.primary)
          ? [user.emails.filter(e, has(e.primary) && e.primary)[0]]
          : [user.emails[0]],
  "phoneNumbers": !has(user.phoneNumbers) || size(user.phoneNumbers) == 0 ? null
      : user.phoneNumbers.exists(p, has(p.primary) && p.primary)
          ? [user.phoneNumbers.filter(p, has(p.primary) && p.primary)[0]]
          : [user.phoneNumbers[0]],
  "addresses": !has(user.addresses) || size(user.addresses) == 0 ? null
      : [user.addresses[0]]
}"#,
    },
    Template {
        name: "slack-user",
        kind: "provider_user",
        description: "Slack's userName is at most 21 lower-case characters without a domain, \
                      and its profile shows displayName: the userName's local part, \
                      lower-cased and cut to 21, and a display name from the name when none \
                      is given.",
        expression: r#"{
  "userName": size(user.userName.split("@")[0]) > 21
      ? user.userName.split("@")[0].lowerAscii().substring(0, 21)
      : user.userName.split("@")[0].lowerAscii(),
  "displayName": has(user.displayName) ? user.displayName
      : has(user.name) && has(user.name.givenName) && has(user.name.familyName)
          ? user.name.givenName + " " + user.name.familyName
          : user.userName
}"#,
    },
];

/// The templates as the admin API lists them.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    pub templates: &'static [Template],
}

/// Every template, as the admin API lists them.
pub fn list() -> TemplateList {
    TemplateList {
        templates: TEMPLATES,
    }
}

/// Replaces a create body's `template` with the template's kind, expression and description
/// (a description in the body wins).
///
/// Fails when the template is unknown, or the body also gives an expression or another kind.
pub fn expand(body: &mut MappingSettings) -> Result<(), MappingError> {
    let Some(name) = body.template.take() else {
        return Ok(());
    };
    let t = TEMPLATES.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        MappingError::Invalid(format!(
            "template {name:?} is not one of {}",
            names.join(", ")
        ))
    })?;
    if body.expression.is_some() {
        return Err(MappingError::Invalid(
            "give a template or an expression, not both".into(),
        ));
    }
    match body.kind.as_deref() {
        Some(k) if k != t.kind => {
            return Err(MappingError::Invalid(format!(
                "template {name:?} is a {} mapping, not {k}",
                t.kind
            )))
        }
        _ => {}
    }
    body.kind = Some(t.kind.into());
    body.expression = Some(t.expression.into());
    body.description.get_or_insert_with(|| t.description.into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mappings::{check, Outcome, Variables};
    use roster_events::{MappingDef, MappingKind};
    use serde_json::{json, Map, Value};

    fn run(template: &str, user: Value) -> Map<String, Value> {
        let t = TEMPLATES.iter().find(|t| t.name == template).unwrap();
        let checked = check(MappingDef {
            name: "t".into(),
            kind: MappingKind::ProviderUser,
            expression: t.expression.into(),
            description: String::new(),
        })
        .unwrap();
        let vars = Variables {
            kind: MappingKind::ProviderUser,
            object: &user,
            existing: None,
            source: None,
            provider: Some(("p", "default")),
        };
        match checked.expression.evaluate_with(&vars).unwrap() {
            Outcome::Attributes(a) => a,
            Outcome::Skip => panic!("skipped"),
        }
    }

    #[test]
    fn every_template_passes_the_checks_of_its_kind() {
        for t in TEMPLATES {
            let mut body = MappingSettings {
                name: Some("x".into()),
                template: Some(t.name.into()),
                ..Default::default()
            };
            expand(&mut body).unwrap();
            crate::mappings::parse(&body, None).unwrap_or_else(|e| panic!("{}: {e}", t.name));
        }
    }

    #[test]
    fn aws_gets_names_and_one_email_and_slack_a_short_user_name() {
        let aws = run(
            "aws-identity-center-user",
            json!({"userName": "grace@example.com",
                   "emails": [{"value": "g@home.example"},
                              {"value": "grace@example.com", "primary": true}]}),
        );
        assert_eq!(
            Value::Object(aws),
            json!({
                "displayName": "grace@example.com",
                "name": {"givenName": "grace", "familyName": "grace"},
                "emails": [{"value": "grace@example.com", "primary": true}],
                "phoneNumbers": null,
                "addresses": null
            })
        );
        let slack = run(
            "slack-user",
            json!({"userName": "Maximilian.Longname-Example@corp.example",
                   "name": {"givenName": "Max", "familyName": "Longname"}}),
        );
        assert_eq!(slack["userName"], "maximilian.longname-e");
        assert_eq!(slack["displayName"], "Max Longname");
    }

    #[test]
    fn a_template_is_not_mixed_with_an_expression_or_another_kind() {
        let body = |v: Value| serde_json::from_value::<MappingSettings>(v).unwrap();
        let mut b = body(json!({"template": "slack-user", "expression": "{}"}));
        assert!(expand(&mut b).is_err());
        let mut b = body(json!({"template": "slack-user", "kind": "provider_group"}));
        assert!(expand(&mut b).is_err());
        let mut b = body(json!({"template": "nope"}));
        assert!(expand(&mut b)
            .unwrap_err()
            .to_string()
            .contains("slack-user"));
    }
}
