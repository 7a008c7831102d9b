//! Policy ids derived from the policy body.

use sha2::{Digest, Sha256};

/// Characters of the derived id: 20 hex digits (80 bits of SHA-256), well within the RFC's
/// 1–32 letters and digits.
const ID_LEN: usize = 20;

/// The `id` to publish in the `_mta-sts` record for a policy body.
///
/// The same body always gives the same id and any change to it gives a new one, so the id
/// never has to be bumped by hand: senders refetch exactly when what they would fetch changed.
pub fn policy_id(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut id = String::with_capacity(ID_LEN);
    for byte in digest.iter().take(ID_LEN / 2) {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::is_valid_id;

    #[test]
    fn same_body_same_id_and_any_change_a_new_one() {
        let a = policy_id(
            b"version: STSv1\r\nmode: enforce\r\nmx: a.example.com\r\nmax_age: 604800\r\n",
        );
        let b = policy_id(
            b"version: STSv1\r\nmode: enforce\r\nmx: a.example.com\r\nmax_age: 604800\r\n",
        );
        let c = policy_id(
            b"version: STSv1\r\nmode: enforce\r\nmx: a.example.com\r\nmax_age: 604801\r\n",
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(is_valid_id(&a));
        assert_eq!(a.len(), ID_LEN);
    }
}
