//! Instance profiles' temporary credentials: each instance's metadata endpoint hands out
//! an access key (`ASIA...`), a secret and a session token that expire, new ones before
//! the old expire, and the AWS endpoint accepts them only with their token and only for
//! what the group's role allows. They live in memory only: they die with the instance
//! (and with bellows), and are never logged or stored.

use std::collections::HashMap;
use std::sync::Mutex;

use bellows_core::{Duration, Time};

/// How long a credential is valid: as EC2's, six hours.
pub const LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// New credentials are handed out once the current ones have less than this left, so
/// that SDKs, which refresh 15 minutes before expiry, always get fresh ones.
pub const ROTATE_BEFORE: Duration = Duration::from_secs(3600);

/// What a role may call when the stack names nothing.
pub use bellows_core::stack::DEFAULT_ROLE_ALLOW as DEFAULT_ALLOW;

/// One instance's credentials.
#[derive(Clone)]
pub struct Session {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    pub instance: String,
    pub role: String,
    pub allow: Vec<String>,
    pub issued: Time,
    pub expires: Time,
}

impl std::fmt::Debug for Session {
    // The secret and the token are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("instance", &self.instance)
            .field("role", &self.role)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether the role allows `service:action` (`service:*`, `service:Prefix*` and
    /// `*` match as IAM's wildcards do).
    pub fn allows(&self, service: &str, action: &str) -> bool {
        allows(&self.allow, service, action)
    }
}

pub fn allows(allow: &[String], service: &str, action: &str) -> bool {
    allow.iter().any(|rule| {
        if rule == "*" {
            return true;
        }
        let Some((svc, pattern)) = rule.split_once(':') else {
            return false;
        };
        if !svc.eq_ignore_ascii_case(service) {
            return false;
        }
        match pattern.strip_suffix('*') {
            Some(prefix) => action.starts_with(prefix),
            None => pattern == action,
        }
    })
}

/// Every instance's credentials.
#[derive(Debug, Default)]
pub struct Sessions {
    by_key: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The credentials an instance is to use now: its newest unless they have less than
    /// `ROTATE_BEFORE` left, else new ones (the old stay valid until they expire).
    pub fn current(
        &self,
        instance: &str,
        role: &str,
        allow: &[String],
        now: Time,
    ) -> Result<Session, crate::token::TokenError> {
        let mut all = self.lock();
        all.retain(|_, s| s.expires > now);
        let newest = all
            .values()
            .filter(|s| s.instance == instance)
            .max_by_key(|s| s.issued)
            .cloned();
        if let Some(s) = newest
            && s.expires.since(now) > ROTATE_BEFORE
        {
            return Ok(s);
        }
        let id = crate::token::random_hex::<8>()?.to_uppercase();
        let s = Session {
            access_key_id: format!("ASIA{id}"),
            secret_access_key: crate::token::random_hex::<20>()?,
            token: crate::token::random_hex::<48>()?,
            instance: instance.to_owned(),
            role: role.to_owned(),
            allow: allow.to_vec(),
            issued: now,
            expires: now + LIFETIME,
        };
        all.insert(s.access_key_id.clone(), s.clone());
        Ok(s)
    }

    /// A key's session, if it is valid now.
    pub fn lookup(&self, access_key_id: &str, now: Time) -> Option<Session> {
        self.lock()
            .get(access_key_id)
            .filter(|s| s.expires > now)
            .cloned()
    }

    /// An instance is gone: so are its credentials.
    pub fn forget(&self, instance: &str) {
        self.lock().retain(|_, s| s.instance != instance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Vec<String> {
        DEFAULT_ALLOW.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn credentials_rotate_before_they_expire_and_die_with_the_instance() {
        let s = Sessions::default();
        let t0 = Time::from_millis(1_000_000);
        let a = s.current("i-1", "web", &allow(), t0).unwrap();
        assert!(a.access_key_id.starts_with("ASIA") && a.access_key_id.len() == 20);
        assert_eq!(a.expires, t0 + LIFETIME);
        // The same ones until an hour before they expire.
        let later = Time::from_millis((t0 + LIFETIME).as_millis() - ROTATE_BEFORE.as_millis());
        let before = Time::from_millis(later.as_millis() - 1000);
        let b = s.current("i-1", "web", &allow(), before).unwrap();
        assert_eq!(a.access_key_id, b.access_key_id);
        let c = s.current("i-1", "web", &allow(), later).unwrap();
        assert_ne!(a.access_key_id, c.access_key_id, "rotated");
        assert_eq!(c.expires, later + LIFETIME);
        // The old ones still work until they expire, then not.
        assert!(s.lookup(&a.access_key_id, later).is_some());
        assert!(s.lookup(&a.access_key_id, t0 + LIFETIME).is_none());
        let other = s.current("i-2", "web", &allow(), t0).unwrap();
        s.forget("i-1");
        assert!(s.lookup(&c.access_key_id, later).is_none());
        assert!(s.lookup(&other.access_key_id, t0).is_some());
        assert!(!format!("{other:?}").contains(&other.secret_access_key));
        assert!(!format!("{other:?}").contains(&other.token));
    }

    #[test]
    fn the_default_role_reads_and_writes_data_but_never_changes_the_stack() {
        let a = allow();
        assert!(allows(&a, "dynamodb", "PutItem"));
        assert!(allows(&a, "dynamodb", "CreateTable"));
        assert!(allows(&a, "cloudwatch", "PutMetricData"));
        assert!(!allows(&a, "cloudwatch", "SetAlarmState"));
        assert!(!allows(&a, "autoscaling", "SetDesiredCapacity"));
        assert!(!allows(&a, "ec2", "RevokeSecurityGroupIngress"));
        let wide = vec!["ec2:Describe*".to_owned()];
        assert!(allows(&wide, "ec2", "DescribeInstances"));
        assert!(!allows(&wide, "ec2", "AuthorizeSecurityGroupIngress"));
    }
}
