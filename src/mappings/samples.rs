//! The sample objects every mapping is tried on before it is saved: for each of users and
//! groups, one with every attribute a real identity provider sends (Entra ID's enterprise
//! user, a group with members) and one with only what SCIM requires. An expression that fails
//! on either would fail on real objects: it is refused with the sample's name.

use roster_events::MappingKind;
use serde_json::{json, Value};

/// The samples of a kind, the full one first, by the name an error gives them.
pub fn of(kind: MappingKind) -> Vec<(&'static str, Value)> {
    if kind.users() {
        vec![
            ("the sample user with every attribute", full_user()),
            ("the sample user with only a userName", minimal_user()),
        ]
    } else {
        vec![
            ("the sample group with members", full_group()),
            ("the sample group with only a displayName", minimal_group()),
        ]
    }
}

/// The name of the run of the full sample as a replacement of itself.
pub fn replacing(kind: MappingKind) -> &'static str {
    if kind.users() {
        "the sample user with every attribute, replacing itself"
    } else {
        "the sample group with members, replacing itself"
    }
}

fn full_user() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "8f3c4a1e-5b2d-4c6f-9a7e-1d2b3c4d5e6f",
        "userName": "Adele.Vance@contoso.example",
        "name": {
            "formatted": "Adele Vance",
            "givenName": "Adele",
            "familyName": "Vance",
            "middleName": "J",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III"
        },
        "displayName": "Adele Vance",
        "nickName": "Adele",
        "title": "Retail Manager",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "emails": [
            {"value": "Adele.Vance@contoso.example", "type": "work", "primary": true},
            {"value": "adele@home.example", "type": "home", "primary": false}
        ],
        "phoneNumbers": [
            {"value": "+1 425 555 0109", "type": "work", "primary": true},
            {"value": "+1 425 555 0110", "type": "mobile"}
        ],
        "addresses": [{
            "type": "work",
            "streetAddress": "205 108th Ave NE",
            "locality": "Bellevue",
            "region": "WA",
            "postalCode": "98004",
            "country": "US",
            "formatted": "205 108th Ave NE, Bellevue, WA 98004, US",
            "primary": true
        }],
        "roles": [{"value": "retail", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Contoso",
            "division": "Retail",
            "department": "Sales",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "Megan Bowen"}
        },
        "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Sales", "type": "direct"}],
        "meta": {
            "resourceType": "User",
            "created": "2026-01-23T04:56:22Z",
            "lastModified": "2026-05-13T04:42:34Z",
            "version": "W/\"3\""
        }
    })
}

fn minimal_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "c3a2a9f6-1b7e-4f5c-8d6a-2e9b0c1d3f4a",
        "userName": "svc-backup"
    })
}

fn full_group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "externalId": "0c1b2a39-4857-4e6d-8c7b-6a5f4e3d2c1b",
        "displayName": "Sales",
        "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646", "display": "Adele Vance", "type": "User"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Retail", "type": "Group"}
        ],
        "meta": {
            "resourceType": "Group",
            "created": "2026-01-23T04:56:22Z",
            "lastModified": "2026-05-13T04:42:34Z",
            "version": "W/\"7\""
        }
    })
}

fn minimal_group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
        "displayName": "Everyone"
    })
}
