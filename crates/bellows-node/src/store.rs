//! Persistent state in the state directory's SQLite database: every event, and the
//! scaling activities they describe, kept across restarts.

use std::path::Path;

use bellows_core::alarm::AlarmSpec;
use bellows_core::event::Event;
use bellows_core::group::Activity;
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state database holds a record it cannot read: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// A delivery the outbox is to attempt now.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub url: String,
    pub body: String,
    pub attempts: i64,
    pub method: String,
    pub auth_env: Option<String>,
    pub incident: Option<i64>,
    pub action: Option<String>,
}

/// A stored investigation, as listed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InvestigationRow {
    pub id: i64,
    pub time: bellows_core::Time,
    pub alarm: Option<String>,
    pub title: String,
}

/// An incident: an alarm in ALARM with its investigation, until the alarm is OK again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    pub id: i64,
    pub alarm: String,
    pub title: String,
    pub opened: bellows_core::Time,
    pub resolved: Option<bellows_core::Time>,
    pub investigation: i64,
    pub issue_number: Option<i64>,
    pub issue_url: Option<String>,
    /// Deliveries of this incident not yet through.
    pub pending_deliveries: i64,
    pub last_error: Option<String>,
}

/// One outbox entry, as `bellows incidents` and the API show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub target: String,
    pub url: String,
    pub created: bellows_core::Time,
    pub attempts: i64,
    pub delivered: Option<bellows_core::Time>,
    pub last_error: Option<String>,
    pub next_attempt: bellows_core::Time,
}

/// One audit record with its place in the event sequence.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub record: bellows_core::event::AuditRecord,
}

#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS events (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 time INTEGER NOT NULL,
                 kind TEXT NOT NULL,
                 body TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS activities (
                 id TEXT PRIMARY KEY,
                 group_name TEXT NOT NULL,
                 start INTEGER NOT NULL,
                 body TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS activities_by_group ON activities (group_name, start);
             CREATE TABLE IF NOT EXISTS audit (
                 seq INTEGER PRIMARY KEY,
                 time INTEGER NOT NULL,
                 actor TEXT NOT NULL,
                 action TEXT NOT NULL,
                 target TEXT NOT NULL,
                 body TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS audit_by_time ON audit (time);
             CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
             CREATE TABLE IF NOT EXISTS investigations (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 time INTEGER NOT NULL,
                 alarm TEXT,
                 title TEXT NOT NULL,
                 report TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS incidents (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 alarm TEXT NOT NULL,
                 title TEXT NOT NULL,
                 opened INTEGER NOT NULL,
                 resolved INTEGER,
                 investigation INTEGER NOT NULL,
                 issue_number INTEGER,
                 issue_url TEXT
             );
             CREATE TABLE IF NOT EXISTS alarm_overrides (
                 stack TEXT NOT NULL,
                 name TEXT NOT NULL,
                 file TEXT,
                 current TEXT,
                 PRIMARY KEY (stack, name)
             );
             CREATE TABLE IF NOT EXISTS group_capacity (
                 name TEXT PRIMARY KEY,
                 file TEXT NOT NULL,
                 current TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 created INTEGER NOT NULL,
                 target TEXT NOT NULL,
                 url TEXT NOT NULL,
                 body TEXT NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 next_attempt INTEGER NOT NULL,
                 delivered INTEGER,
                 last_error TEXT
             );
             CREATE TABLE IF NOT EXISTS aws_resources (
                 stack TEXT NOT NULL,
                 kind TEXT NOT NULL,
                 id TEXT NOT NULL,
                 body TEXT NOT NULL,
                 PRIMARY KEY (stack, kind, id)
             );",
        )?;
        // Outbox columns added after the first release: HTTP method, the environment
        // variable that holds a token (the token itself is never stored), and the
        // incident a delivery belongs to with what it does to the incident's issue.
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('outbox')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for (name, decl) in [
            ("method", "TEXT NOT NULL DEFAULT 'POST'"),
            ("auth_env", "TEXT"),
            ("incident", "INTEGER"),
            ("action", "TEXT"),
        ] {
            if !columns.iter().any(|c| c == name) {
                conn.execute_batch(&format!("ALTER TABLE outbox ADD COLUMN {name} {decl}"))?;
            }
        }
        Ok(Store { conn })
    }

    /// Records one event; an activity event also updates that activity.
    pub fn record(&mut self, event: &Event) -> Result<i64, StoreError> {
        let body = serde_json::to_string(event)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO events (time, kind, body) VALUES (?1, ?2, ?3)",
            params![event.time().as_millis() as i64, event.kind(), body],
        )?;
        let seq = tx.last_insert_rowid();
        if let Event::Audit { record } = event {
            tx.execute(
                "INSERT INTO audit (seq, time, actor, action, target, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    seq,
                    record.time.as_millis() as i64,
                    record.actor,
                    record.action,
                    record.target,
                    serde_json::to_string(record)?
                ],
            )?;
        }
        // A group's capacity as it runs, whoever changed it, to be kept across restarts.
        if let Event::Capacity { group, after, .. } = event {
            tx.execute(
                "UPDATE group_capacity SET current = ?2 WHERE name = ?1",
                params![group, serde_json::to_string(after)?],
            )?;
        }
        if let Event::Activity { activity } = event {
            tx.execute(
                "INSERT INTO activities (id, group_name, start, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                params![
                    activity.id,
                    activity.group,
                    activity.start.as_millis() as i64,
                    serde_json::to_string(activity)?
                ],
            )?;
        }
        tx.commit()?;
        Ok(seq)
    }

    /// The newest activities first, of one group or all.
    pub fn activities(
        &self,
        group: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT body FROM activities WHERE (?1 IS NULL OR group_name = ?1)
             ORDER BY start DESC, rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![group, limit as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            out.push(serde_json::from_str(&body?)?);
        }
        Ok(out)
    }

    /// The audit trail, newest first, optionally only records at or after `since` and
    /// only of one target (`group/web`) or of targets under a prefix (`instance/`).
    pub fn audit(
        &self,
        since: Option<bellows_core::Time>,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, body FROM audit WHERE time >= ?1 AND (?2 IS NULL OR target = ?2 OR substr(target, 1, length(?2)) = ?2)
             ORDER BY seq DESC LIMIT ?3",
        )?;
        let since = since.map_or(0, |t| t.as_millis() as i64);
        let rows = stmt.query_map(params![since, target, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body) = row?;
            out.push(AuditEntry {
                seq,
                record: serde_json::from_str(&body)?,
            });
        }
        Ok(out)
    }

    /// Stored events from `from` on, oldest first, at most `limit`.
    pub fn events_since(
        &self,
        from: bellows_core::Time,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body FROM events WHERE time >= ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![from.as_millis() as i64, limit as i64], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for body in rows {
            out.push(serde_json::from_str(&body?)?);
        }
        Ok(out)
    }

    /// Stored events after `seq`, oldest first: what an event stream replays to a client
    /// that reconnects with `Last-Event-ID`.
    pub fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<(i64, Event)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![seq, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body) = row?;
            out.push((seq, serde_json::from_str(&body)?));
        }
        Ok(out)
    }

    /// What a previous run that did not stop (`kill -9` of bellows, a crash) left open
    /// is closed: activities in progress are failed, with that reason; each instance it
    /// never saw terminated gets its Terminate activity and lifecycle end (its shim
    /// stopped it when bellows went away); and its missing `StopStack` is recorded.
    /// Returns how many records were added.
    pub fn close_orphaned_activities(
        &mut self,
        now: bellows_core::Time,
    ) -> Result<usize, StoreError> {
        use bellows_core::group::{ActivityKind, ActivityStatus, Lifecycle};
        let open: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT body FROM activities WHERE body LIKE '%\"InProgress\"%'")?;
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?
        };
        let mut closed = 0;
        for body in open {
            let mut a: Activity = serde_json::from_str(&body)?;
            if a.status != ActivityStatus::InProgress {
                continue;
            }
            a.status = ActivityStatus::Failed;
            a.end = Some(now);
            a.status_message = Some("bellows stopped before the activity finished".to_owned());
            self.record(&Event::Activity { activity: a })?;
            closed += 1;
        }

        // The last run: from its StartStack on. A run that stopped recorded StopStack.
        let start: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT seq, target FROM audit WHERE action = 'StartStack' ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((start_seq, target)) = start else {
            return Ok(closed);
        };
        let stopped: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM audit WHERE action = 'StopStack' AND seq > ?1)",
            params![start_seq],
            |r| r.get(0),
        )?;
        if stopped {
            return Ok(closed);
        }
        // Its end is known only as its last record.
        let ended: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(time), 0) FROM events WHERE seq > ?1",
            params![start_seq],
            |r| r.get(0),
        )?;
        let ended = bellows_core::Time::from_millis(ended.max(0) as u64);
        let mut last: std::collections::BTreeMap<String, Event> = Default::default();
        {
            let mut stmt = self.conn.prepare(
                "SELECT body FROM events WHERE seq > ?1 AND kind = 'lifecycle' ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![start_seq], |r| r.get::<_, String>(0))?;
            for body in rows {
                let event: Event = serde_json::from_str(&body?)?;
                if let Event::Lifecycle { instance, .. } = &event {
                    last.insert(instance.to_string(), event);
                }
            }
        }
        let mut left = 0;
        for event in last.into_values() {
            let Event::Lifecycle {
                group,
                instance,
                to,
                zone,
                ..
            } = event
            else {
                continue;
            };
            if to == Lifecycle::Terminated {
                continue;
            }
            left += 1;
            let activity = Activity {
                id: format!("orphan-{instance}"),
                group: group.clone(),
                instance: instance.clone(),
                kind: ActivityKind::Terminate,
                description: format!("Terminating EC2 instance: {instance}"),
                cause: format!(
                    "At {ended} an instance was taken out of service in response to bellows ending without stopping it (kill -9 of bellows, or a crash); its supervisor stopped it when bellows went away. Recorded at {now}, when bellows started again."
                ),
                start: ended,
                end: Some(ended),
                status: ActivityStatus::Successful,
                status_message: None,
            };
            self.record(&Event::Activity { activity })?;
            self.record(&Event::Lifecycle {
                time: ended,
                group,
                instance,
                from: Some(to),
                to: Lifecycle::Terminated,
                zone,
            })?;
            closed += 2;
        }
        let record = bellows_core::event::AuditRecord {
            time: ended,
            actor: "bellows".to_owned(),
            source: "bellows".to_owned(),
            action: "StopStack".to_owned(),
            target,
            before: serde_json::json!({ "instances": left }),
            after: serde_json::json!({
                "instances": 0,
                "why": format!("the run ended without stopping its stack (kill -9 of bellows, or a crash); recorded at {now}, when bellows started again"),
            }),
            result: "ok".to_owned(),
        };
        self.record(&Event::Audit { record })?;
        Ok(closed + 1)
    }

    /// A group as it starts: with the capacity it had when the last run ended (set at
    /// run time by a person, a policy or a schedule, as AWS keeps a group's desired
    /// capacity), but for each of min, max and desired whose value in the stack file
    /// changed since, which then applies (as `bellows apply` does). Either way the
    /// file's values are remembered for the next start.
    pub fn restored_group(
        &mut self,
        spec: &bellows_core::stack::GroupSpec,
        now: bellows_core::Time,
    ) -> Result<bellows_core::group::Group, StoreError> {
        use bellows_core::event::Capacity;
        let mut group = bellows_core::group::Group::new(spec);
        let file = group.capacity();
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT file, current FROM group_capacity WHERE name = ?1",
                params![spec.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let mut current = file;
        if let Some((was, kept)) = row {
            let was: Capacity = serde_json::from_str(&was)?;
            let kept: Capacity = serde_json::from_str(&kept)?;
            let pick = |w: u32, f: u32, k: u32| if w == f { k } else { f };
            let min = pick(was.min, file.min, kept.min);
            let max = pick(was.max, file.max, kept.max);
            let desired = pick(was.desired, file.desired, kept.desired).clamp(min, max.max(min));
            let wanted = Capacity { min, max, desired };
            if wanted != file {
                // A stored value that no longer fits is dropped rather than trusted.
                match group.set_capacity(
                    Some(min),
                    Some(max),
                    Some(desired),
                    now,
                    "bellows (starting again, with the capacity the group had when the last run ended)",
                ) {
                    Ok(c) => current = c,
                    Err(e) => {
                        tracing::warn!(group = %spec.name, error = %e, "the kept capacity does not fit; the file's applies");
                    }
                }
            }
        }
        self.conn.execute(
            "INSERT INTO group_capacity (name, file, current) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET file = excluded.file, current = excluded.current",
            params![
                spec.name,
                serde_json::to_string(&file)?,
                serde_json::to_string(&current)?
            ],
        )?;
        Ok(group)
    }

    /// `bellows apply` took a new file: its capacity values are what a later start
    /// compares the file with.
    pub fn remember_file_capacity(
        &mut self,
        spec: &bellows_core::stack::GroupSpec,
    ) -> Result<(), StoreError> {
        let file = bellows_core::event::Capacity {
            min: spec.min,
            max: spec.max,
            desired: spec.desired,
        };
        let file = serde_json::to_string(&file)?;
        self.conn.execute(
            "INSERT INTO group_capacity (name, file, current) VALUES (?1, ?2, ?2)
             ON CONFLICT (name) DO UPDATE SET file = excluded.file",
            params![spec.name, file],
        )?;
        Ok(())
    }

    /// An AWS resource record (a VPC, a load balancer, ...) created or changed through
    /// the AWS endpoint. A changed record keeps its place in the creation order.
    pub fn put_resource(
        &mut self,
        stack: &str,
        kind: &str,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO aws_resources (stack, kind, id, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (stack, kind, id) DO UPDATE SET body = excluded.body",
            params![stack, kind, id, serde_json::to_string(body)?],
        )?;
        Ok(())
    }

    /// An AWS resource record deleted; deleting one that is not there is no error.
    pub fn delete_resource(&mut self, stack: &str, kind: &str, id: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM aws_resources WHERE stack = ?1 AND kind = ?2 AND id = ?3",
            params![stack, kind, id],
        )?;
        Ok(())
    }

    /// The stack's AWS resource records as `(kind, id, body)`, in creation order.
    pub fn resources(
        &self,
        stack: &str,
    ) -> Result<Vec<(String, String, serde_json::Value)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, id, body FROM aws_resources WHERE stack = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![stack], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, id, body) = row?;
            out.push((kind, id, serde_json::from_str(&body)?));
        }
        Ok(out)
    }

    /// An alarm put (`current`) or deleted (`None`) through the AWS endpoint, kept for
    /// the next start together with what the stack file said of it then (`file`; the
    /// first override of a name keeps the file's definition it replaced).
    pub fn remember_alarm(
        &mut self,
        stack: &str,
        name: &str,
        file: Option<&AlarmSpec>,
        current: Option<&AlarmSpec>,
    ) -> Result<(), StoreError> {
        let file = file.map(serde_json::to_string).transpose()?;
        let current = current.map(serde_json::to_string).transpose()?;
        self.conn.execute(
            "INSERT INTO alarm_overrides (stack, name, file, current) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (stack, name) DO UPDATE SET current = excluded.current",
            params![stack, name, file, current],
        )?;
        Ok(())
    }

    /// The stack's alarms as they start: the file's, with what was put or deleted
    /// through the AWS endpoint in earlier runs, but for an alarm whose definition in
    /// the file changed since (the file's then applies, as for capacity) and an
    /// override whose actions name a policy or webhook the stack no longer has. An
    /// override that no longer applies is forgotten.
    pub fn restored_alarms(
        &mut self,
        stack: &bellows_core::stack::Stack,
    ) -> Result<Vec<AlarmSpec>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<String>)> = self
            .conn
            .prepare("SELECT name, file, current FROM alarm_overrides WHERE stack = ?1")?
            .query_map(params![stack.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut alarms = stack.alarms.clone();
        for (name, file, current) in rows {
            let in_file = alarms.iter().position(|a| a.name == name);
            let was: Option<serde_json::Value> =
                file.as_deref().map(serde_json::from_str).transpose()?;
            let now = in_file
                .map(|i| serde_json::to_value(&alarms[i]))
                .transpose()?;
            let current: Option<AlarmSpec> =
                current.as_deref().map(serde_json::from_str).transpose()?;
            let acts = |a: &AlarmSpec| {
                a.alarm_actions
                    .iter()
                    .chain(&a.ok_actions)
                    .chain(&a.insufficient_data_actions)
                    .all(|x| match x.strip_prefix("webhook:") {
                        Some(w) => stack.webhooks.iter().any(|h| h.name == w),
                        None => stack.policies.iter().any(|p| &p.name == x),
                    })
            };
            if was != now || current.as_ref().is_some_and(|c| !acts(c)) {
                tracing::info!(alarm = %name, "the stack file changed this alarm since it was put or deleted through the AWS endpoint: the file's applies");
                self.conn.execute(
                    "DELETE FROM alarm_overrides WHERE stack = ?1 AND name = ?2",
                    params![stack.name, name],
                )?;
                continue;
            }
            match (in_file, current) {
                (Some(i), Some(c)) => alarms[i] = c,
                (None, Some(c)) => alarms.push(c),
                (Some(i), None) => {
                    alarms.remove(i);
                }
                (None, None) => {}
            }
        }
        Ok(alarms)
    }

    /// `bellows apply` took a new file: it is what the stack's alarms are, and what is
    /// kept of the AWS endpoint's changes goes.
    pub fn forget_alarm_overrides(&mut self, stack: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM alarm_overrides WHERE stack = ?1",
            params![stack],
        )?;
        Ok(())
    }

    /// Queues a delivery; it survives restarts until delivered.
    pub fn enqueue(
        &mut self,
        target: &str,
        url: &str,
        body: &str,
        now: bellows_core::Time,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO outbox (created, target, url, body, next_attempt) VALUES (?1, ?2, ?3, ?4, ?1)",
            params![now.as_millis() as i64, target, url, body],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Queues a delivery that belongs to an incident: `action` is `open` (its answer
    /// carries the issue's number), `comment` or `close` (their URL has `{number}`, known
    /// once the issue is open). `auth_env` names the variable holding the token.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue_for_incident(
        &mut self,
        target: &str,
        method: &str,
        url: &str,
        body: &str,
        auth_env: Option<&str>,
        incident: i64,
        action: &str,
        now: bellows_core::Time,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO outbox (created, target, url, body, next_attempt, method, auth_env, incident, action)
             VALUES (?1, ?2, ?3, ?4, ?1, ?5, ?6, ?7, ?8)",
            params![now.as_millis() as i64, target, url, body, method, auth_env, incident, action],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Deliveries due now, oldest first.
    pub fn due(&self, now: bellows_core::Time) -> Result<Vec<Due>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, url, body, attempts, method, auth_env, incident, action FROM outbox
             WHERE delivered IS NULL AND next_attempt <= ?1 ORDER BY id LIMIT 50",
        )?;
        let rows = stmt.query_map(params![now.as_millis() as i64], |r| {
            Ok(Due {
                id: r.get(0)?,
                url: r.get(1)?,
                body: r.get(2)?,
                attempts: r.get(3)?,
                method: r.get(4)?,
                auth_env: r.get(5)?,
                incident: r.get(6)?,
                action: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn save_investigation(
        &mut self,
        time: bellows_core::Time,
        alarm: Option<&str>,
        title: &str,
        report: &str,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO investigations (time, alarm, title, report) VALUES (?1, ?2, ?3, ?4)",
            params![time.as_millis() as i64, alarm, title, report],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Stored investigations, newest first, without their reports.
    pub fn investigations(&self, limit: usize) -> Result<Vec<InvestigationRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, time, alarm, title FROM investigations ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(InvestigationRow {
                id: r.get(0)?,
                time: bellows_core::Time::from_millis(r.get::<_, i64>(1)? as u64),
                alarm: r.get(2)?,
                title: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One stored investigation's report (JSON).
    pub fn investigation(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT report FROM investigations WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The open incident of an alarm, if there is one.
    pub fn open_incident(&self, alarm: &str) -> Result<Option<Incident>, StoreError> {
        Ok(self
            .incidents_where("alarm = ?1 AND resolved IS NULL", alarm)?
            .into_iter()
            .next())
    }

    pub fn incidents(&self, limit: usize) -> Result<Vec<Incident>, StoreError> {
        let mut list = self.incidents_where("?1 = ?1", "")?;
        list.truncate(limit);
        Ok(list)
    }

    fn incidents_where(&self, filter: &str, arg: &str) -> Result<Vec<Incident>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT i.id, i.alarm, i.title, i.opened, i.resolved, i.investigation, i.issue_number, i.issue_url,
                    (SELECT COUNT(*) FROM outbox o WHERE o.incident = i.id AND o.delivered IS NULL),
                    (SELECT MAX(o.last_error) FROM outbox o WHERE o.incident = i.id AND o.delivered IS NULL)
             FROM incidents i WHERE {filter} ORDER BY i.id DESC"
        ))?;
        let rows = stmt.query_map(params![arg], |r| {
            Ok(Incident {
                id: r.get(0)?,
                alarm: r.get(1)?,
                title: r.get(2)?,
                opened: bellows_core::Time::from_millis(r.get::<_, i64>(3)? as u64),
                resolved: r
                    .get::<_, Option<i64>>(4)?
                    .map(|t| bellows_core::Time::from_millis(t as u64)),
                investigation: r.get(5)?,
                issue_number: r.get(6)?,
                issue_url: r.get(7)?,
                pending_deliveries: r.get(8)?,
                last_error: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn open_new_incident(
        &mut self,
        alarm: &str,
        title: &str,
        investigation: i64,
        now: bellows_core::Time,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO incidents (alarm, title, opened, investigation) VALUES (?1, ?2, ?3, ?4)",
            params![alarm, title, now.as_millis() as i64, investigation],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn resolve_incident(&mut self, id: i64, now: bellows_core::Time) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE incidents SET resolved = ?2 WHERE id = ?1",
            params![id, now.as_millis() as i64],
        )?;
        Ok(())
    }

    pub fn set_issue(&mut self, incident: i64, number: i64, url: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE incidents SET issue_number = ?2, issue_url = ?3 WHERE id = ?1",
            params![incident, number, url],
        )?;
        Ok(())
    }

    /// The issue number of an incident, once its issue is open.
    pub fn issue_number(&self, incident: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT issue_number FROM incidents WHERE id = ?1",
                params![incident],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    pub fn delivered(&mut self, id: i64, now: bellows_core::Time) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET delivered = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            params![id, now.as_millis() as i64],
        )?;
        Ok(())
    }

    pub fn failed(
        &mut self,
        id: i64,
        next: bellows_core::Time,
        error: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3 WHERE id = ?1",
            params![id, next.as_millis() as i64, error],
        )?;
        Ok(())
    }

    /// Every delivery, newest first: (id, target, created, attempts, delivered, last error).
    pub fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, target, url, created, attempts, delivered, last_error, next_attempt FROM outbox ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(Delivery {
                id: r.get(0)?,
                target: r.get(1)?,
                url: r.get(2)?,
                created: bellows_core::Time::from_millis(r.get::<_, i64>(3)? as u64),
                attempts: r.get(4)?,
                delivered: r
                    .get::<_, Option<i64>>(5)?
                    .map(|t| bellows_core::Time::from_millis(t as u64)),
                last_error: r.get(6)?,
                next_attempt: bellows_core::Time::from_millis(r.get::<_, i64>(7)? as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn event_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_events_read_back_from_a_time_oldest_first() {
        let dir = std::env::temp_dir().join(format!("bellows-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        let mut store = Store::open(&path).unwrap();
        for (ms, authorized) in [(1_000, false), (2_000, true)] {
            store
                .record(&Event::Ingress {
                    time: bellows_core::Time::from_millis(ms),
                    listener: "http".into(),
                    cidr: "127.0.0.0/8".into(),
                    authorized,
                    actor: "operator".into(),
                })
                .unwrap();
        }
        let events = store
            .events_since(bellows_core::Time::from_millis(500), 10)
            .unwrap();
        let flags: Vec<bool> = events
            .iter()
            .map(|e| {
                matches!(
                    e,
                    Event::Ingress {
                        authorized: true,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(flags, vec![false, true]);
        assert_eq!(
            store
                .events_since(bellows_core::Time::from_millis(1_500), 10)
                .unwrap()
                .len(),
            1
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn resources_read_back_in_creation_order_per_stack() {
        let dir =
            std::env::temp_dir().join(format!("bellows-store-resources-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        {
            let mut store = Store::open(&path).unwrap();
            let vpc = serde_json::json!({ "vpcId": "vpc-1", "cidrBlock": "10.0.0.0/16" });
            store.put_resource("web", "vpc", "vpc-1", &vpc).unwrap();
            store
                .put_resource("web", "subnet", "subnet-1", &serde_json::json!({ "n": 1 }))
                .unwrap();
            store
                .put_resource("web", "subnet", "subnet-2", &serde_json::json!({ "n": 2 }))
                .unwrap();
            store
                .put_resource("other", "vpc", "vpc-9", &serde_json::json!({}))
                .unwrap();
            // A change keeps the record's place; a deletion of what is not there is fine.
            store
                .put_resource(
                    "web",
                    "vpc",
                    "vpc-1",
                    &serde_json::json!({ "changed": true }),
                )
                .unwrap();
            store.delete_resource("web", "subnet", "subnet-1").unwrap();
            store
                .delete_resource("web", "subnet", "subnet-404")
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let got = store.resources("web").unwrap();
        assert_eq!(
            got,
            vec![
                (
                    "vpc".to_owned(),
                    "vpc-1".to_owned(),
                    serde_json::json!({ "changed": true })
                ),
                (
                    "subnet".to_owned(),
                    "subnet-2".to_owned(),
                    serde_json::json!({ "n": 2 })
                ),
            ]
        );
        assert_eq!(store.resources("other").unwrap().len(), 1);
        assert!(store.resources("none").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
