//! A stored SCIM document (a user's or group's attributes): a JSON object kept as its compact
//! text. Keeping the text, not a tree of values, makes decoding a stored event a copy instead
//! of a parse, keeps a document in memory at about its serialized size, and lets responses
//! splice it instead of re-serializing. It is parsed only where its attributes are needed
//! (filters that scan, PATCH).

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// A JSON object, as compact text.
#[derive(Clone)]
pub struct Document(Box<RawValue>);

impl Document {
    /// The compact text of `map`. Keys come out in serde_json's map order (sorted), so equal
    /// maps give equal text.
    pub fn from_map(map: &Map<String, Value>) -> Document {
        // A map of JSON values with string keys always serializes.
        Document(serde_json::value::to_raw_value(map).expect("a JSON map serializes"))
    }

    /// The document's JSON text: an object, `{...}`.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The document parsed into a map.
    pub fn to_map(&self) -> Map<String, Value> {
        // The text was checked to be a JSON object when the document was made.
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    /// Some of the document's fields, parsed into `T` (fields `T` does not name are skipped).
    ///
    /// Fails when a named field has another JSON type than `T` expects.
    pub fn fields<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl Document {
    /// The stand-in for the document of a user whose personal data was erased: a userName
    /// made of the user's id alone.
    pub fn erased(id: crate::ResourceId) -> Document {
        let mut map = Map::new();
        map.insert("userName".into(), Value::String(format!("erased:{id}")));
        Document::from_map(&map)
    }

    /// A document from stored JSON text.
    ///
    /// Fails when the text is not a JSON object.
    pub fn from_raw(raw: Box<RawValue>) -> Result<Document, String> {
        if !raw.get().trim_start().starts_with('{') {
            return Err("a stored document must be a JSON object".into());
        }
        Ok(Document(raw))
    }
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Document::from_raw(Box::<RawValue>::deserialize(d)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_round_trip_and_compare_by_text() {
        let m = json!({"userName": "a", "name": {"givenName": "A"}})
            .as_object()
            .unwrap()
            .clone();
        let d = Document::from_map(&m);
        assert_eq!(d.to_map(), m);
        let back: Document = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        let from_value: Document = serde_json::from_value(Value::Object(m.clone())).unwrap();
        assert_eq!(from_value, d);
        assert!(serde_json::from_str::<Document>("[1]").is_err());
        assert!(serde_json::from_str::<Document>("\"x\"").is_err());
    }
}
