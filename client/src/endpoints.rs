//! Endpoint lists: `HOST:PORT` strings, comma-separated or not, with or without `http://`.

use crate::Error;

/// Splits and normalises endpoints into `http://HOST:PORT` URLs.
pub fn normalize<I, S>(endpoints: I) -> Result<Vec<String>, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut urls = Vec::new();
    for item in endpoints {
        for endpoint in item
            .as_ref()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let bare = endpoint.strip_prefix("http://").unwrap_or(endpoint);
            let valid = bare
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(Error::Invalid(format!(
                    "endpoint {endpoint:?}: expected HOST:PORT"
                )));
            }
            urls.push(format!("http://{bare}"));
        }
    }
    if urls.is_empty() {
        return Err(Error::Invalid("no endpoints given".into()));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalize_to_host_and_port() {
        assert_eq!(
            normalize(["127.0.0.1:7001,http://127.0.0.1:7002", " host:7003 "]).unwrap(),
            vec![
                "http://127.0.0.1:7001",
                "http://127.0.0.1:7002",
                "http://host:7003"
            ]
        );
        assert!(normalize(["localhost"]).is_err());
        assert!(normalize([":80"]).is_err());
        assert!(normalize(Vec::<String>::new()).is_err());
    }
}
