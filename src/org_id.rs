//! [`OrgId`]: a validated tenant id.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::Error;

/// The longest tenant id accepted.
pub const MAX_ORG_ID_LEN: usize = 64;

/// A validated tenant id: the "id" of an `Organization` row.
///
/// Only `[A-Za-z0-9_-]`, 1 to 64 characters, so that nothing unvalidated ever reaches SQL (the
/// id is still always sent as a bound parameter). Cheap to clone.
///
/// ```
/// use flakeguard_db::OrgId;
///
/// let org: OrgId = "acme-corp_1".parse()?;
/// assert_eq!(org.as_str(), "acme-corp_1");
/// assert!(OrgId::new("acme'; DROP TABLE x; --").is_err());
/// assert!(OrgId::new("").is_err());
/// # Ok::<(), flakeguard_db::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(Arc<str>);

impl OrgId {
    /// The organization that migration step 4 creates and step 5 gives pre-existing rows.
    pub const DEFAULT: &'static str = "default-org-id";

    /// Validates `id` as a tenant id.
    pub fn new(id: impl AsRef<str>) -> Result<Self, Error> {
        let id = id.as_ref();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > MAX_ORG_ID_LEN {
            Some("it is longer than 64 characters")
        } else if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            Some("it may contain only A-Z, a-z, 0-9, '_' and '-'")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidTenantId {
                shown: shown(id),
                reason,
            }),
            None => Ok(OrgId(id.into())),
        }
    }

    /// A new, random tenant id (a CUID2), for creating an organization.
    pub fn generate() -> Self {
        OrgId(flakeguard_entity::stamps::new_id().into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The refused input as it may appear in an error message: escaped, and cut at 80 characters.
fn shown(id: &str) -> String {
    let cut: String = id.chars().take(80).collect();
    let mut s = format!("{cut:?}");
    if cut.len() < id.len() {
        s.push('…');
    }
    s
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgId({})", self.0)
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for OrgId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The UUID's hyphenated lower-case form (`67e55044-10b1-426f-9247-bb680e5fe0c8`): 36
/// characters of `[0-9a-f-]`, always a valid tenant id. For applications that key their
/// organizations by UUID; the `Organization` row's "id" is then that text.
///
/// ```
/// # #[cfg(feature = "uuid")] {
/// let uuid = uuid::Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
/// let org = flakeguard_db::OrgId::from(uuid);
/// assert_eq!(org.as_str(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
/// # }
/// ```
#[cfg(feature = "uuid")]
impl From<uuid::Uuid> for OrgId {
    fn from(id: uuid::Uuid) -> Self {
        let mut buf = uuid::Uuid::encode_buffer();
        OrgId(Arc::from(&*id.hyphenated().encode_lower(&mut buf)))
    }
}

impl FromStr for OrgId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        OrgId::new(s)
    }
}

impl TryFrom<&str> for OrgId {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self, Error> {
        OrgId::new(s)
    }
}

impl TryFrom<String> for OrgId {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        OrgId::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_of_the_allowed_alphabet() {
        for ok in [
            "a",
            "default-org-id",
            "ACME_42",
            &"x".repeat(64),
            "ckx1a2b3c4d5e6f7g8h9i0j",
        ] {
            assert_eq!(
                OrgId::new(ok).map(|o| o.to_string()).ok().as_deref(),
                Some(ok)
            );
        }
        assert!(OrgId::new(OrgId::generate().as_str()).is_ok());
    }

    #[cfg(feature = "uuid")]
    #[test]
    fn a_uuid_is_always_a_valid_tenant_id() {
        for id in [
            uuid::Uuid::nil(),
            uuid::Uuid::max(),
            uuid::Uuid::from_u128(0xdead_beef),
        ] {
            let org = OrgId::from(id);
            assert_eq!(OrgId::new(org.as_str()).ok(), Some(org.clone()));
            assert_eq!(org.as_str(), id.hyphenated().to_string());
        }
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        let too_long = "x".repeat(65);
        let cases = [
            ("", "empty"),
            (too_long.as_str(), "longer than 64"),
            ("acme'", "only"),
            ("a;b", "only"),
            ("a b", "only"),
            ("ü", "only"),
            ("a\0b", "only"),
            ("a\"b", "only"),
            ("a.b", "only"),
        ];
        for (bad, why) in cases {
            match OrgId::new(bad) {
                Err(Error::InvalidTenantId { reason, .. }) => {
                    assert!(reason.contains(why), "{bad:?}: {reason}")
                }
                other => panic!("{bad:?} accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn error_shows_the_input_escaped_and_cut() {
        let e = OrgId::new(format!("{}\0", "y".repeat(100))).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&"y".repeat(80)) && !msg.contains(&"y".repeat(81)),
            "{msg}"
        );
        assert!(!msg.contains('\0'));
    }
}
