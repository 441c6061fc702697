//! The Via branches the endpoint makes: `z9hG4bK` and sixteen lowercase hex digits of a
//! random number. The text goes on the wire; the number is the key its client transaction
//! (and, after a 2xx, its Accepted record) is filed under, so a response is matched by
//! reading the number back and hashing an integer, with no copy of the text kept.

/// The RFC 3261 magic cookie that starts every branch of a compliant transaction.
pub(super) const BRANCH_MAGIC: &str = "z9hG4bK";

/// Appends the low `digits` hex digits of `bits`, most significant first, in lowercase (as
/// [`branch_key`] reads them).
pub(super) fn push_hex(s: &mut String, bits: u64, digits: usize) {
    const HEX: &[u8] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        s.push(char::from(HEX[(bits >> (4 * i)) as usize & 15]));
    }
}

/// A branch for the number `key`.
pub(super) fn branch_text(key: u64) -> String {
    let mut b = String::with_capacity(BRANCH_MAGIC.len() + 16);
    b.push_str(BRANCH_MAGIC);
    push_hex(&mut b, key, 16);
    b
}

/// The number a branch the endpoint made encodes; `None` for any other branch.
pub(super) fn branch_key(branch: &str) -> Option<u64> {
    let digits = branch.strip_prefix(BRANCH_MAGIC)?;
    let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if digits.len() != 16 || !digits.as_bytes().iter().all(lower_hex) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_branches_have_keys() {
        assert_eq!(branch_key("z9hG4bK00000000000000ff"), Some(255));
        assert_eq!(branch_key("z9hG4bK00000000000000FF"), None);
        assert_eq!(branch_key("z9hG4bK00000000000000f"), None);
        assert_eq!(branch_key("z9hG4bK+0000000000000ff"), None);
        assert_eq!(branch_key("z9hG4bKé000000000000ff"), None);
        assert_eq!(branch_key("0000000000000000000000ff"), None);
    }

    #[test]
    fn our_branches_read_back_as_the_number_drawn() {
        for key in [0, 1, 0xff, 0x0123_4567_89ab_cdef, u64::MAX] {
            let text = branch_text(key);
            assert_eq!(branch_key(&text), Some(key), "{text}");
        }
    }
}
