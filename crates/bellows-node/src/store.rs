//! Persistent state in the state directory's SQLite database: every event, and the
//! scaling activities they describe, kept across restarts.

use std::path::Path;

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
             );",
        )?;
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

    /// Activities a previous run left in progress can never finish: bellows stopped
    /// with them. They are closed as failed, with that reason.
    pub fn close_orphaned_activities(
        &mut self,
        now: bellows_core::Time,
    ) -> Result<usize, StoreError> {
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
            if a.status != bellows_core::group::ActivityStatus::InProgress {
                continue;
            }
            a.status = bellows_core::group::ActivityStatus::Failed;
            a.end = Some(now);
            a.status_message = Some("bellows stopped before the activity finished".to_owned());
            self.record(&Event::Activity { activity: a })?;
            closed += 1;
        }
        Ok(closed)
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

    /// Deliveries due now: (id, url, body, attempts).
    pub fn due(
        &self,
        now: bellows_core::Time,
    ) -> Result<Vec<(i64, String, String, i64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, url, body, attempts FROM outbox WHERE delivered IS NULL AND next_attempt <= ?1 ORDER BY id LIMIT 50",
        )?;
        let rows = stmt.query_map(params![now.as_millis() as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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

    /// Recorded events of one kind, oldest first, read from a state directory's
    /// database without writing to it (for the scenarios; the audit API will serve
    /// this).
    pub fn read_events(path: &Path, kind: &str) -> Result<Vec<Event>, StoreError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut q = conn.prepare("SELECT body FROM events WHERE kind = ?1 ORDER BY seq")?;
        let rows = q.query_map(params![kind], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            out.push(serde_json::from_str(&body?)?);
        }
        Ok(out)
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
    fn recorded_events_read_back_by_kind_oldest_first() {
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
        let events = Store::read_events(&path, "ingress").unwrap();
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
        assert!(Store::read_events(&path, "alarm").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
