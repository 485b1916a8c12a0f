//! `proxyConfiguration` of `StartBrowserSession`: routing the session's traffic through
//! customer-managed proxies by destination domain.
//!
//! Chromium takes the rules as a PAC script (`--proxy-pac-url` with a `data:` URL, so nothing
//! is fetched): bypass patterns first (they "take precedence over all proxy routing rules"),
//! then the proxies with `domainPatterns` in the order given, then the first proxy without
//! patterns as the catch-all, else a direct connection. `.example.com` matches any subdomain
//! of example.com, `example.com` only that host (the model's documentation).
//!
//! Proxy credentials name an AWS Secrets Manager secret; Hangar has no Secrets Manager to read
//! it from, so a proxy with `credentials` is refused rather than started without them (the
//! session would only meet `407 Proxy Authentication Required`).

use hangar_model::data::{Proxy, ProxyConfiguration};

use crate::ToolsError;

/// The Chromium switches that apply `config`.
pub(crate) fn chromium_args(config: &ProxyConfiguration) -> Result<Vec<String>, ToolsError> {
    let pac = pac_script(config)?;
    Ok(vec![format!(
        "--proxy-pac-url=data:application/x-ns-proxy-autoconfig;base64,{}",
        base64_encode(pac.as_bytes())
    )])
}

/// The PAC script of `config`.
pub(crate) fn pac_script(config: &ProxyConfiguration) -> Result<String, ToolsError> {
    let mut routed = Vec::new();
    let mut catch_all = None;
    for (i, proxy) in config.proxies.iter().enumerate() {
        let Proxy::ExternalProxy(external) = proxy;
        if external.credentials.is_some() {
            return Err(ToolsError::Validation(format!(
                "proxyConfiguration.proxies[{i}].externalProxy.credentials: proxy credentials \
                 are read from AWS Secrets Manager, which this Hangar cannot reach; use a proxy \
                 without authentication"
            )));
        }
        let target = format!("PROXY {}:{}", external.server, external.port);
        match &external.domain_patterns {
            Some(patterns) if !patterns.is_empty() => routed.push((patterns.clone(), target)),
            _ => {
                catch_all.get_or_insert(target);
            }
        }
    }
    let bypass = config
        .bypass
        .as_ref()
        .and_then(|b| b.domain_patterns.clone())
        .unwrap_or_default();
    // Patterns are validated hostnames (letters, digits, '-', '.'), safe inside JS strings;
    // serde_json quotes them anyway.
    let list = |patterns: &[String]| {
        serde_json::to_string(
            &patterns
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|_| "[]".into())
    };
    let mut script = String::from(
        "function hangarMatch(host, patterns) {\n  for (var i = 0; i < patterns.length; i++) {\n    var p = patterns[i];\n    if (p.charAt(0) === '.' ? (host.length > p.length && host.substring(host.length - p.length) === p) : host === p) return true;\n  }\n  return false;\n}\nfunction FindProxyForURL(url, host) {\n  host = host.toLowerCase();\n",
    );
    if !bypass.is_empty() {
        script.push_str(&format!(
            "  if (hangarMatch(host, {})) return 'DIRECT';\n",
            list(&bypass)
        ));
    }
    for (patterns, target) in &routed {
        script.push_str(&format!(
            "  if (hangarMatch(host, {})) return {};\n",
            list(patterns),
            serde_json::to_string(target).unwrap_or_default()
        ));
    }
    let last = catch_all.unwrap_or_else(|| "DIRECT".into());
    script.push_str(&format!(
        "  return {};\n}}\n",
        serde_json::to_string(&last).unwrap_or_default()
    ));
    Ok(script)
}

/// Standard base64 (the PAC script is small; not worth a dependency of this crate).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use hangar_model::data::{ExternalProxy, Proxy, ProxyBypass, ProxyConfiguration};

    fn external(server: &str, port: i32, patterns: Option<&[&str]>) -> Proxy {
        Proxy::ExternalProxy(ExternalProxy {
            server: server.into(),
            port,
            domain_patterns: patterns.map(|p| p.iter().map(|s| s.to_string()).collect()),
            credentials: None,
        })
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(super::base64_encode(b""), "");
        assert_eq!(super::base64_encode(b"f"), "Zg==");
        assert_eq!(super::base64_encode(b"fo"), "Zm8=");
        assert_eq!(super::base64_encode(b"foo"), "Zm9v");
        assert_eq!(super::base64_encode(b"foobar!"), "Zm9vYmFyIQ==");
    }

    #[test]
    fn pac_orders_bypass_then_patterns_then_catch_all() {
        let config = ProxyConfiguration {
            proxies: vec![
                external("catch.all", 3128, None),
                external("corp.proxy", 8080, Some(&[".Example.com", "exact.test"])),
            ],
            bypass: Some(ProxyBypass {
                domain_patterns: Some(vec!["direct.example.com".into()]),
            }),
        };
        let pac = super::pac_script(&config).unwrap();
        let bypass = pac.find("'DIRECT'").unwrap();
        let corp = pac.find("PROXY corp.proxy:8080").unwrap();
        let catch = pac.find("PROXY catch.all:3128").unwrap();
        assert!(bypass < corp && corp < catch, "{pac}");
        assert!(pac.contains(r#"[".example.com","exact.test"]"#), "{pac}");
    }

    #[test]
    fn credentials_are_refused_naming_the_field() {
        let mut proxy = ExternalProxy {
            server: "p".into(),
            port: 1,
            domain_patterns: None,
            credentials: None,
        };
        proxy.credentials = Some(hangar_model::data::ProxyCredentials::BasicAuth(
            hangar_model::data::BasicAuth {
                secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:x".into(),
            },
        ));
        let config = ProxyConfiguration {
            proxies: vec![Proxy::ExternalProxy(proxy)],
            bypass: None,
        };
        let e = super::pac_script(&config).unwrap_err().to_string();
        assert!(e.contains("proxies[0].externalProxy.credentials"), "{e}");
    }
}
