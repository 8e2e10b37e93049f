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

/// Every instance's credentials, and the role each instance carries.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<String, Session>,
    /// Per instance: its role's name and what the role allows now.
    roles: HashMap<String, (String, Vec<String>)>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An instance is launched with `role`, which allows `allow`.
    pub fn grant(&self, instance: &str, role: &str, allow: &[String]) {
        self.lock()
            .roles
            .insert(instance.to_owned(), (role.to_owned(), allow.to_vec()));
    }

    /// What `role` allows has changed: the instances that carry it, and their
    /// credentials already handed out, are allowed the new list at once, as IAM reads a
    /// role's policies at each request. An instance launched with another role keeps
    /// it (a new instance profile is for new instances, as on EC2). Whether anything
    /// changed.
    pub fn set_allow(&self, instance: &str, role: &str, allow: &[String]) -> bool {
        let mut inner = self.lock();
        let Some(carried) = inner.roles.get_mut(instance) else {
            return false;
        };
        if carried.0 != role || carried.1 == allow {
            return false;
        }
        carried.1 = allow.to_vec();
        for s in inner.by_key.values_mut().filter(|s| s.instance == instance) {
            s.allow = allow.to_vec();
        }
        true
    }

    /// The credentials an instance is to use now: its newest unless they have less than
    /// `ROTATE_BEFORE` left, else new ones (the old stay valid until they expire). They
    /// carry the role the instance was granted (`role` and `allow` when none was).
    pub fn current(
        &self,
        instance: &str,
        role: &str,
        allow: &[String],
        now: Time,
    ) -> Result<Session, crate::token::TokenError> {
        let mut inner = self.lock();
        inner.by_key.retain(|_, s| s.expires > now);
        let newest = inner
            .by_key
            .values()
            .filter(|s| s.instance == instance)
            .max_by_key(|s| s.issued)
            .cloned();
        if let Some(s) = newest
            && s.expires.since(now) > ROTATE_BEFORE
        {
            return Ok(s);
        }
        let (role, allow) = inner
            .roles
            .get(instance)
            .cloned()
            .unwrap_or_else(|| (role.to_owned(), allow.to_vec()));
        let id = crate::token::random_hex::<8>()?.to_uppercase();
        let s = Session {
            access_key_id: format!("ASIA{id}"),
            secret_access_key: crate::token::random_hex::<20>()?,
            token: crate::token::random_hex::<48>()?,
            instance: instance.to_owned(),
            role,
            allow,
            issued: now,
            expires: now + LIFETIME,
        };
        inner.by_key.insert(s.access_key_id.clone(), s.clone());
        Ok(s)
    }

    /// A key's session, if it is valid now.
    pub fn lookup(&self, access_key_id: &str, now: Time) -> Option<Session> {
        self.lock()
            .by_key
            .get(access_key_id)
            .filter(|s| s.expires > now)
            .cloned()
    }

    /// An instance is gone: so are its credentials.
    pub fn forget(&self, instance: &str) {
        let mut inner = self.lock();
        inner.by_key.retain(|_, s| s.instance != instance);
        inner.roles.remove(instance);
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
    fn a_changed_role_reaches_the_credentials_already_out_but_not_another_roles() {
        let s = Sessions::default();
        let t0 = Time::from_millis(1_000_000);
        s.grant("i-1", "app", &allow());
        s.grant("i-2", "old-app", &allow());
        let a = s.current("i-1", "ignored", &[], t0).unwrap();
        assert_eq!(
            (a.role.as_str(), a.allow.clone()),
            ("app", allow()),
            "the granted role"
        );
        let wider = vec!["dynamodb:*".to_owned(), "ec2:Describe*".to_owned()];
        assert!(s.set_allow("i-1", "app", &wider));
        assert!(!s.set_allow("i-1", "app", &wider), "nothing new");
        assert!(
            !s.set_allow("i-2", "app", &wider),
            "i-2 carries another role"
        );
        let looked = s.lookup(&a.access_key_id, t0).unwrap();
        assert!(
            looked.allows("ec2", "DescribeInstances"),
            "the key already out"
        );
        let rotated = Time::from_millis((t0 + LIFETIME).as_millis() - ROTATE_BEFORE.as_millis());
        let b = s.current("i-1", "ignored", &[], rotated).unwrap();
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_eq!(b.allow, wider, "and the keys handed out next");
        s.forget("i-1");
        assert!(!s.set_allow("i-1", "app", &allow()));
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
