//! Form or query parameters as received: repeated names are detected, not silently merged.

/// Decoded `application/x-www-form-urlencoded` parameters, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

/// Largest single parameter value accepted (a request object or a long state fits easily).
pub const MAX_PARAM_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    Repeated(String),
    TooLong(String),
}

impl ParamError {
    pub fn describe(&self) -> String {
        match self {
            Self::Repeated(n) => format!("parameter `{n}` is included more than once"),
            Self::TooLong(n) => format!("parameter `{n}` is too long"),
        }
    }
}

impl Params {
    pub fn parse(raw: &[u8]) -> Params {
        Params(
            url::form_urlencoded::parse(raw)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The single value of `name`. Empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Result<Option<&str>, ParamError> {
        let mut found: Option<&str> = None;
        for (k, v) in &self.0 {
            if k == name {
                if found.is_some() {
                    return Err(ParamError::Repeated(name.to_string()));
                }
                if v.len() > MAX_PARAM_LEN {
                    return Err(ParamError::TooLong(name.to_string()));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_empty() {
        let p = Params::parse(b"a=1&a=2&b=&c=x%20y");
        assert_eq!(p.get("a"), Err(ParamError::Repeated("a".into())));
        assert_eq!(p.get("b"), Ok(None));
        assert_eq!(p.get("c"), Ok(Some("x y")));
        assert_eq!(p.get("d"), Ok(None));
    }
}
