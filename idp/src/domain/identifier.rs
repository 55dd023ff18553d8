//! Sign-in identifiers, normalised so that equivalent spellings find the same account.

/// Lower-cases e-mail addresses; turns Russian phone spellings (`+7 (912) 345-67-89`,
/// `89123456789`) into `+79123456789`; trims everything else.
pub fn normalize_login(raw: &str) -> String {
    let t = raw.trim();
    if t.contains('@') {
        return t.to_lowercase();
    }
    let phone_like = t.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    if phone_like && !digits.is_empty() {
        match digits.len() {
            11 if digits.starts_with('8') || digits.starts_with('7') => {
                return format!("+7{}", &digits[1..])
            }
            10 if digits.starts_with('9') => return format!("+7{digits}"),
            _ => {}
        }
    }
    t.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::normalize_login;

    #[test]
    fn phones_and_emails() {
        assert_eq!(normalize_login(" Ivan@Example.RU "), "ivan@example.ru");
        assert_eq!(normalize_login("+7 (912) 345-67-89"), "+79123456789");
        assert_eq!(normalize_login("89123456789"), "+79123456789");
        assert_eq!(normalize_login("9123456789"), "+79123456789");
        assert_eq!(normalize_login("123-456-789 01"), "123-456-789 01");
    }
}
