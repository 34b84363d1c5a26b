//! The comparison key of a userName or group displayName, by which uniqueness in a directory
//! is decided: the PRECIS Nickname profile (RFC 8266, over the FreeformClass of RFC 8264):
//! spaces mapped and trimmed, runs of spaces collapsed, width and compatibility forms folded
//! (NFKC), lower-cased. `carol`, `Carol `, `ｃａｒｏｌ` share one key; a name with characters
//! PRECIS disallows (zero-width and other invisible format characters, controls, unassigned
//! code points) has no key and is refused at the edge. The name itself is stored as sent.
//!
//! Nickname rather than the stricter Username profile because real directories hold userNames
//! with spaces and group names with punctuation; both are compared the same way.

use precis_core::profile::PrecisFastInvocation;
use precis_profiles::Nickname;
use roster_events::fold_case;

/// The longest userName or displayName accepted, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// Why a name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("is empty")]
    Empty,
    #[error("contains {0}, which names may not contain (RFC 8264 FreeformClass)")]
    Disallowed(String),
}

/// Checks that `name` can be stored and compared.
///
/// Fails when it is too long, empty once spaces are trimmed, or holds a disallowed character.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if ascii_key(name).is_some() {
        // Printable ASCII is all in the FreeformClass: only emptiness could fail.
        return Ok(());
    }
    precis_key(name).map(|_| ())
}

/// The key `name` is compared by. Total: a name stored before keys were checked (an older
/// release accepted any string) falls back to its lower case.
pub fn name_key(name: &str) -> String {
    ascii_key(name)
        .or_else(|| precis_key(name).ok())
        .unwrap_or_else(|| fold_case(name))
}

/// The key of a printable-ASCII name without the PRECIS machinery: for those characters the
/// profile only trims and collapses spaces and lower-cases (a property test holds the two
/// equal).
fn ascii_key(name: &str) -> Option<String> {
    if !name.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return None;
    }
    let mut key = String::with_capacity(name.len());
    for word in name.split(' ').filter(|w| !w.is_empty()) {
        if !key.is_empty() {
            key.push(' ');
        }
        key.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    }
    (!key.is_empty()).then_some(key)
}

fn precis_key(name: &str) -> Result<String, NameError> {
    match Nickname::enforce(name) {
        Ok(s) if s.is_empty() => Err(NameError::Empty),
        Ok(s) => Ok(s.to_lowercase()),
        Err(precis_core::Error::Invalid) => Err(NameError::Empty),
        Err(precis_core::Error::BadCodepoint(cp)) => Err(NameError::Disallowed(format!(
            "U+{:04X} at position {}",
            cp.cp, cp.position
        ))),
        Err(e) => Err(NameError::Disallowed(format!("{e:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn look_alikes_share_a_key() {
        let k = name_key("carol");
        for variant in ["Carol", "carol ", "  CAROL", "ｃａｒｏｌ", "Ｃａｒｏｌ"] {
            assert_eq!(name_key(variant), k, "{variant:?}");
        }
        assert_eq!(name_key("Ada  Lovelace"), name_key("ada lovelace"));
        assert_ne!(name_key("carol"), name_key("caro1"));
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for bad in [
            "carol\u{200b}",
            "car\u{200d}ol",
            "carol\u{0007}",
            "\u{feff}carol",
        ] {
            assert!(
                matches!(check_name(bad), Err(NameError::Disallowed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(check_name("   "), Err(NameError::Empty));
        assert_eq!(check_name(&"a".repeat(257)), Err(NameError::TooLong));
        assert_eq!(check_name("Zoë Ångström-Ölund (ops) 🚀"), Ok(()));
        assert_eq!(check_name("josé.müller@example.com"), Ok(()));
    }

    #[test]
    fn spaces_around_and_inside_non_ascii_names_are_trimmed_and_collapsed() {
        // precis-profiles 0.1 indexed these by character as if by byte and panicked.
        assert_eq!(name_key("Zoë "), "zoë");
        assert_eq!(name_key("José  Álvarez"), "josé álvarez");
        assert_eq!(name_key(" Ωmega"), "ωmega");
        assert_eq!(name_key("\u{c4a}ΣA\u{fffc} "), "\u{c4a}σa\u{fffc}");
        assert_eq!(check_name("Zoë "), Ok(()));
    }

    #[test]
    fn a_legacy_name_without_a_precis_key_still_has_one() {
        assert_eq!(name_key("Carol\u{200b}"), "carol\u{200b}");
    }

    proptest! {
        #[test]
        fn the_ascii_shortcut_agrees_with_the_profile(s in "[ -~]{0,24}") {
            let fast = ascii_key(&s);
            let full = precis_key(&s).ok();
            prop_assert_eq!(fast, full);
        }

        #[test]
        fn keys_never_panic(s in "\\PC{0,24}") {
            let _ = name_key(&s);
            let _ = check_name(&s);
        }
    }
}
