//! SCIM discovery (RFC 7644 §4, RFC 7643 §5-§7): `/ServiceProviderConfig`, `/ResourceTypes`
//! and `/Schemas`, rendered from the same schema definitions that shape stored documents and
//! filters, and saying exactly what this server supports. `/Me` is not implemented (501).

use super::error::{ScimError, SCIM_JSON};
use super::scim::SourceAuth;
use super::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use roster_projections::schema::{self, Schema};
use serde_json::{json, Value};

const SPC: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{name}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{urn}", get(one_schema))
        .route("/Me", any(me))
}

fn json_response(body: Value) -> Response {
    ([(header::CONTENT_TYPE, SCIM_JSON)], body.to_string()).into_response()
}

fn list(resources: Vec<Value>) -> Response {
    json_response(json!({
        "schemas": [LIST],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    }))
}

// RFC 7643 §5
async fn service_provider_config(State(app): State<AppState>, auth: SourceAuth) -> Response {
    json_response(json!({
        "schemas": [SPC],
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": super::scim::MAX_BULK_OPERATIONS,
            "maxPayloadSize": app.settings.max_body_bytes
        },
        "filter": {"supported": true, "maxResults": app.settings.max_page_size},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A bearer token issued to this source (Authorization: Bearer <token>).",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", auth.base()),
        }
    }))
}

fn resource_type_json(name: &str, auth: &SourceAuth) -> Option<Value> {
    let base = auth.base();
    let declared = |list: &[schema::DeclaredSchema]| -> Vec<Value> {
        list.iter()
            .map(|d| json!({"schema": d.id, "required": false}))
            .collect()
    };
    let (endpoint, schema, extensions, keeps) = match name {
        n if n.eq_ignore_ascii_case("User") => {
            let users = auth.users();
            let mut ext = vec![json!({"schema": schema::ENTERPRISE_USER, "required": false})];
            ext.extend(declared(users.declared));
            ("/Users", schema::USER, ext, users.undeclared)
        }
        n if n.eq_ignore_ascii_case("Group") => {
            let groups = auth.groups();
            (
                "/Groups",
                schema::GROUP,
                declared(groups.declared),
                groups.undeclared,
            )
        }
        _ => return None,
    };
    // The truth about attributes under other extensions, which no schema here describes.
    let undeclared = match keeps {
        roster_events::UndeclaredExtensions::Refuse => {
            "attributes under other extension schemas are refused"
        }
        roster_events::UndeclaredExtensions::Keep => {
            "attributes under other extension schemas are stored and returned as sent, unchecked"
        }
    };
    let id = if endpoint == "/Users" {
        "User"
    } else {
        "Group"
    };
    Some(json!({
        "schemas": [RESOURCE_TYPE],
        "id": id,
        "name": id,
        "endpoint": endpoint,
        "description": format!("{}; {undeclared}", if id == "User" { "User Account" } else { "Group" }),
        "schema": schema,
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{id}")},
    }))
}

// RFC 7643 §6
async fn resource_types(auth: SourceAuth) -> Response {
    let all = ["User", "Group"]
        .iter()
        .filter_map(|n| resource_type_json(n, &auth))
        .collect();
    list(all)
}

async fn resource_type(
    auth: SourceAuth,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    resource_type_json(&name, &auth)
        .map(json_response)
        .ok_or_else(|| ScimError::not_found(format!("resource type {name:?} not found")))
}

fn schema_json(s: &Schema, base: &str) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(|a| a.to_json()).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", s.id)},
    })
}

fn declared_json(d: &schema::DeclaredSchema, base: &str) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "attributes": d.attributes,
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", d.id)},
    })
}

// RFC 7643 §7: the built-in schemas and the extensions this source declared.
async fn schemas(auth: SourceAuth) -> Response {
    let mut all: Vec<Value> = schema::all()
        .iter()
        .map(|s| schema_json(s, auth.base()))
        .collect();
    for d in auth.users().declared.iter().chain(auth.groups().declared) {
        all.push(declared_json(d, auth.base()));
    }
    list(all)
}

async fn one_schema(
    auth: SourceAuth,
    Path((_, urn)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    if let Some(s) = schema::by_id(&urn) {
        return Ok(json_response(schema_json(s, auth.base())));
    }
    auth.users()
        .declared
        .iter()
        .chain(auth.groups().declared)
        .find(|d| d.id.eq_ignore_ascii_case(&urn))
        .map(|d| json_response(declared_json(d, auth.base())))
        .ok_or_else(|| ScimError::not_found(format!("schema {urn:?} not found")))
}

// RFC 7644 §3.11: optional; Roster's sources authenticate as services, not as users.
async fn me(_auth: SourceAuth) -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "/Me is not supported: sources authenticate as services",
    )
}
