//! Listener rules: conditions on a request, and what to do with it.

use core::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
use super::pattern;

/// A rule of a listener. Rules are tried by priority, lowest first; the default action
/// applies when none matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub priority: u32,
    pub conditions: Conditions,
    pub action: Action,
}

/// Every condition given must hold; within one condition any of its values may match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Path patterns, case-sensitive, with `*` and `?`.
    pub paths: Vec<String>,
    /// Host patterns, case-insensitive, matched without the port.
    pub hosts: Vec<String>,
    /// Methods, exact and case-sensitive, like `GET`.
    pub methods: Vec<String>,
    /// (header name, value patterns): value patterns are case-insensitive.
    pub headers: Vec<(String, Vec<String>)>,
    pub source_ips: Vec<Cidr>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Forward(Vec<WeightedTargetGroup>),
    Redirect(Redirect),
    FixedResponse(FixedResponse),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightedTargetGroup {
    pub target_group: String,
    pub weight: u32,
}

/// ALB's redirect: each part defaults to the request's own, and may use the
/// placeholders `#{protocol}`, `#{host}`, `#{port}`, `#{path}` and `#{query}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Redirect {
    pub status: u16,
    pub protocol: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub path: Option<String>,
    pub query: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixedResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// What the rules need to see of a request.
pub trait RequestView {
    fn method(&self) -> &str;
    fn path(&self) -> &str;
    fn host(&self) -> Option<&str>;
    /// Whether any value of header `name` satisfies `f`.
    fn any_header(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool;
    fn source(&self) -> IpAddr;
}

/// The host without its port (`example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`).
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

impl Conditions {
    pub fn matches(&self, req: &impl RequestView) -> bool {
        (self.paths.is_empty()
            || self
                .paths
                .iter()
                .any(|p| pattern::matches(p, req.path(), false)))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == req.method()))
            && (self.hosts.is_empty()
                || req.host().is_some_and(|h| {
                    let h = host_without_port(h);
                    self.hosts.iter().any(|p| pattern::matches(p, h, true))
                }))
            && self.headers.iter().all(|(name, values)| {
                req.any_header(name, &mut |v| {
                    values.iter().any(|p| pattern::matches(p, v, true))
                })
            })
            && (self.source_ips.is_empty()
                || self.source_ips.iter().any(|c| c.contains(req.source())))
    }
}

/// The first rule, in priority order, whose conditions match. `rules` must be sorted.
pub fn first_match<'r>(rules: &'r [Rule], req: &impl RequestView) -> Option<&'r Rule> {
    rules.iter().find(|r| r.conditions.matches(req))
}

/// Picks one of several weighted target groups with a uniform random number.
pub fn pick_weighted(groups: &[WeightedTargetGroup], random: u64) -> Option<&str> {
    let total: u64 = groups.iter().map(|g| u64::from(g.weight)).sum();
    if total == 0 {
        return groups.first().map(|g| g.target_group.as_str());
    }
    let mut r = random % total;
    for g in groups {
        if r < u64::from(g.weight) {
            return Some(&g.target_group);
        }
        r -= u64::from(g.weight);
    }
    None
}

impl Redirect {
    /// The `Location` for a request with these parts (`query` without its `?`).
    pub fn location(
        &self,
        protocol: &str,
        host: &str,
        port: &str,
        path: &str,
        query: &str,
    ) -> String {
        let fill = |template: &Option<String>, default: &str| match template {
            None => default.to_owned(),
            Some(t) => t
                .replace("#{protocol}", protocol)
                .replace("#{host}", host)
                .replace("#{port}", port)
                .replace("#{path}", path.trim_start_matches('/'))
                .replace("#{query}", query),
        };
        let protocol = fill(&self.protocol, protocol).to_lowercase();
        let host = fill(&self.host, host);
        let port = fill(&self.port, port);
        let mut path = fill(&self.path, path);
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let query = fill(&self.query, query);
        let default_port =
            (protocol == "http" && port == "80") || (protocol == "https" && port == "443");
        let mut out = format!("{protocol}://{host}");
        if !default_port && !port.is_empty() {
            out += &format!(":{port}");
        }
        out += &path;
        if !query.is_empty() {
            out += &format!("?{query}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req<'a> {
        method: &'a str,
        path: &'a str,
        host: Option<&'a str>,
        headers: Vec<(&'a str, &'a str)>,
        source: &'a str,
    }

    impl RequestView for Req<'_> {
        fn method(&self) -> &str {
            self.method
        }
        fn path(&self) -> &str {
            self.path
        }
        fn host(&self) -> Option<&str> {
            self.host
        }
        fn any_header(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
            self.headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && f(v))
        }
        fn source(&self) -> IpAddr {
            self.source.parse().unwrap()
        }
    }

    fn rule(priority: u32, conditions: Conditions, tg: &str) -> Rule {
        Rule {
            priority,
            conditions,
            action: Action::Forward(vec![WeightedTargetGroup {
                target_group: tg.into(),
                weight: 1,
            }]),
        }
    }

    fn target(r: Option<&Rule>) -> &str {
        match r.map(|r| &r.action) {
            Some(Action::Forward(g)) => &g[0].target_group,
            _ => "default",
        }
    }

    #[test]
    fn first_matching_rule_by_priority() {
        let rules = vec![
            rule(
                1,
                Conditions {
                    paths: vec!["/api/*".into()],
                    methods: vec!["POST".into()],
                    ..Default::default()
                },
                "api-write",
            ),
            rule(
                2,
                Conditions {
                    paths: vec!["/api/*".into()],
                    ..Default::default()
                },
                "api",
            ),
            rule(
                3,
                Conditions {
                    hosts: vec!["*.example.com".into()],
                    ..Default::default()
                },
                "site",
            ),
            rule(
                4,
                Conditions {
                    headers: vec![("X-Canary".into(), vec!["y*".into()])],
                    ..Default::default()
                },
                "canary",
            ),
            rule(
                5,
                Conditions {
                    source_ips: vec!["10.0.0.0/8".parse().unwrap()],
                    ..Default::default()
                },
                "internal",
            ),
        ];
        let req = |method, path, host, headers, source| Req {
            method,
            path,
            host,
            headers,
            source,
        };
        assert_eq!(
            target(first_match(
                &rules,
                &req("POST", "/api/x", None, vec![], "127.0.0.1")
            )),
            "api-write"
        );
        assert_eq!(
            target(first_match(
                &rules,
                &req("GET", "/api/x", None, vec![], "127.0.0.1")
            )),
            "api"
        );
        assert_eq!(
            target(first_match(
                &rules,
                &req(
                    "GET",
                    "/",
                    Some("WWW.Example.com:8080"),
                    vec![],
                    "127.0.0.1"
                )
            )),
            "site"
        );
        assert_eq!(
            target(first_match(
                &rules,
                &req("GET", "/", Some("example.com"), vec![], "127.0.0.1")
            )),
            "default"
        );
        assert_eq!(
            target(first_match(
                &rules,
                &req("GET", "/", None, vec![("x-canary", "YES")], "127.0.0.1")
            )),
            "canary"
        );
        assert_eq!(
            target(first_match(
                &rules,
                &req("GET", "/", None, vec![("x-canary", "no")], "10.1.2.3")
            )),
            "internal"
        );
        assert_eq!(
            target(first_match(
                &rules,
                &req("GET", "/API/x", None, vec![], "127.0.0.1")
            )),
            "default"
        );
    }

    #[test]
    fn redirects_fill_placeholders() {
        let r = Redirect {
            status: 301,
            protocol: Some("https".into()),
            host: None,
            port: Some("443".into()),
            path: None,
            query: None,
        };
        assert_eq!(
            r.location("http", "example.com", "80", "/a/b", "x=1"),
            "https://example.com/a/b?x=1"
        );
        let r = Redirect {
            status: 302,
            protocol: None,
            host: Some("new.#{host}".into()),
            port: None,
            path: Some("/v2/#{path}".into()),
            query: Some("from=#{host}".into()),
        };
        assert_eq!(
            r.location("http", "old.io", "8080", "/users", ""),
            "http://new.old.io:8080/v2/users?from=old.io"
        );
    }

    #[test]
    fn weighted_groups_split_by_weight() {
        let groups = vec![
            WeightedTargetGroup {
                target_group: "a".into(),
                weight: 80,
            },
            WeightedTargetGroup {
                target_group: "b".into(),
                weight: 20,
            },
        ];
        let a = (0..1000u64)
            .filter(|r| pick_weighted(&groups, *r) == Some("a"))
            .count();
        assert_eq!(a, 800);
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("h:x"), "h:x");
    }
}
