//! DynamoDB's tables and items, in the state directory's `dynamodb.db` (SQLite, WAL,
//! `synchronous = FULL`: a write is on disk before it is acknowledged).
//!
//! The items are not the loop's state: the AWS face reads and writes them here
//! directly, on a blocking thread, one transaction at a time behind a mutex, so that a
//! conditional write's read and write see no other write between them. Items are stored
//! under their key's bytes (`Attr::key_bytes`, which sort as the keys do, so that a
//! query reads its page in order from the index), the item itself as its wire JSON.

use std::path::Path;
use std::sync::Mutex;

use bellows_aws::AwsError;
use bellows_aws::dynamodb::attr::Scalar;
use bellows_aws::dynamodb::table::KeyAttr;
use bellows_aws::dynamodb::{self, Item, TableDef};
use rusqlite::{Connection, OptionalExtension, params};

/// An item's stored key: its partition key's bytes and its sort key's (empty without one).
pub type Key = (Vec<u8>, Vec<u8>);

/// The store of every table.
#[derive(Debug)]
pub struct Tables {
    conn: Mutex<Connection>,
}

/// A table with its item count and size.
#[derive(Debug, Clone)]
pub struct TableStats {
    pub def: TableDef,
    pub items: i64,
    pub bytes: i64,
}

/// One write of a batch or a single write: the table, the key, and what to store
/// (`None` deletes).
#[derive(Debug)]
pub struct Write {
    pub table: String,
    pub key: Key,
    pub item: Option<(Item, usize)>,
}

/// Which page of a partition a query reads: the direction, the sort key it starts
/// after, and its size in items and about in bytes.
#[derive(Debug, Clone, Copy)]
pub struct QueryPage<'a> {
    pub forward: bool,
    pub after: Option<&'a [u8]>,
    pub limit: usize,
    pub max_bytes: usize,
}

/// A page of a scan or a query, before any filter.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Whether the page stopped before the end (a `LastEvaluatedKey` is due).
    pub more: bool,
}

fn internal(e: impl std::fmt::Display) -> AwsError {
    AwsError::new(
        500,
        "InternalServerError",
        format!("the table store failed: {e}"),
    )
}

impl Tables {
    pub fn open(path: &Path) -> Result<Tables, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS tables (
                 name TEXT PRIMARY KEY,
                 hash_name TEXT NOT NULL,
                 hash_type TEXT NOT NULL,
                 range_name TEXT,
                 range_type TEXT,
                 billing TEXT NOT NULL,
                 rcu INTEGER NOT NULL,
                 wcu INTEGER NOT NULL,
                 created REAL NOT NULL,
                 id TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS items (
                 tbl TEXT NOT NULL,
                 pk BLOB NOT NULL,
                 sk BLOB NOT NULL,
                 item TEXT NOT NULL,
                 size INTEGER NOT NULL,
                 PRIMARY KEY (tbl, pk, sk)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS table_tags (
                 tbl TEXT NOT NULL,
                 key TEXT NOT NULL,
                 value TEXT NOT NULL,
                 PRIMARY KEY (tbl, key)
             );
             CREATE TABLE IF NOT EXISTS store_format (version INTEGER NOT NULL);",
        )?;
        upgrade(&conn)?;
        Ok(Tables {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn create(&self, def: &TableDef) -> Result<(), AwsError> {
        let conn = self.lock();
        let exists: Option<String> = conn
            .query_row(
                "SELECT name FROM tables WHERE name = ?1",
                [&def.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(internal)?;
        if exists.is_some() {
            return Err(dynamodb::in_use(&def.name));
        }
        write_def(&conn, def).map_err(internal)
    }

    /// A table's tags, by key.
    pub fn tags(&self, name: &str) -> Result<Vec<(String, String)>, AwsError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT key, value FROM table_tags WHERE tbl = ?1 ORDER BY key")
            .map_err(internal)?;
        let rows = stmt
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(internal)?
            .collect::<Result<Vec<(String, String)>, _>>()
            .map_err(internal)?;
        Ok(rows)
    }

    /// Sets tags on a table (a key given again takes the new value).
    pub fn tag(&self, name: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(internal)?;
        for (k, v) in tags {
            tx.execute(
                "INSERT INTO table_tags (tbl, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
                [name, k, v],
            )
            .map_err(internal)?;
        }
        tx.commit().map_err(internal)
    }

    /// Removes tags from a table by key.
    pub fn untag(&self, name: &str, keys: &[String]) -> Result<(), AwsError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(internal)?;
        for k in keys {
            tx.execute(
                "DELETE FROM table_tags WHERE tbl = ?1 AND key = ?2",
                [name, k],
            )
            .map_err(internal)?;
        }
        tx.commit().map_err(internal)
    }

    pub fn update(&self, def: &TableDef) -> Result<(), AwsError> {
        write_def(&self.lock(), def).map_err(internal)
    }

    pub fn def(&self, name: &str) -> Result<Option<TableDef>, AwsError> {
        read_def(&self.lock(), name).map_err(internal)
    }

    pub fn stats(&self, name: &str) -> Result<Option<TableStats>, AwsError> {
        let conn = self.lock();
        let Some(def) = read_def(&conn, name).map_err(internal)? else {
            return Ok(None);
        };
        let (items, bytes) = counts(&conn, name).map_err(internal)?;
        Ok(Some(TableStats { def, items, bytes }))
    }

    pub fn names(&self) -> Result<Vec<String>, AwsError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT name FROM tables ORDER BY name")
            .map_err(internal)?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(internal)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(internal)?;
        Ok(rows)
    }

    /// Deletes a table and its items; what it held, or `None` if it was not there.
    pub fn delete(&self, name: &str) -> Result<Option<TableStats>, AwsError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(internal)?;
        let Some(def) = read_def(&tx, name).map_err(internal)? else {
            return Ok(None);
        };
        let (items, bytes) = counts(&tx, name).map_err(internal)?;
        tx.execute("DELETE FROM items WHERE tbl = ?1", [name])
            .map_err(internal)?;
        tx.execute("DELETE FROM tables WHERE name = ?1", [name])
            .map_err(internal)?;
        tx.execute("DELETE FROM table_tags WHERE tbl = ?1", [name])
            .map_err(internal)?;
        tx.commit().map_err(internal)?;
        Ok(Some(TableStats { def, items, bytes }))
    }

    pub fn get(&self, table: &str, key: &Key) -> Result<Option<Item>, AwsError> {
        get(&self.lock(), table, key)
    }

    /// A read-modify-write of one item in one transaction: `f` gets the stored item and
    /// returns what to store (`None` deletes) or an error that leaves it as it was.
    pub fn modify<T>(
        &self,
        table: &str,
        key: &Key,
        f: impl FnOnce(Option<&Item>) -> Result<(Option<(Item, usize)>, T), AwsError>,
    ) -> Result<T, AwsError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(internal)?;
        let old = get(&tx, table, key)?;
        let (new, out) = f(old.as_ref())?;
        put(&tx, table, key, new.as_ref())?;
        tx.commit().map_err(internal)?;
        Ok(out)
    }

    /// Reads and writes of several items in one transaction (TransactWriteItems): `f`
    /// reads and writes through the `Txn`; nothing is written unless it returns `Ok`.
    pub fn transact<T>(
        &self,
        f: impl FnOnce(&Txn<'_>) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(internal)?;
        let out = f(&Txn { conn: &tx })?;
        tx.commit().map_err(internal)?;
        Ok(out)
    }

    /// Every write of a batch in one transaction.
    pub fn write_all(&self, writes: &[Write]) -> Result<(), AwsError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(internal)?;
        for w in writes {
            put(&tx, &w.table, &w.key, w.item.as_ref())?;
        }
        tx.commit().map_err(internal)
    }

    /// Items in key order after `after`, up to `limit` of them and about `max_bytes`.
    pub fn scan(
        &self,
        table: &str,
        after: Option<&Key>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page, AwsError> {
        let conn = self.lock();
        let (pk, sk) = after.cloned().unwrap_or_default();
        let mut stmt = conn
            .prepare(
                "SELECT item, size FROM items WHERE tbl = ?1 AND (pk, sk) > (?2, ?3)
                 ORDER BY pk, sk LIMIT ?4",
            )
            .map_err(internal)?;
        // Every stored partition key holds at least its type's byte, so the empty
        // start key sorts before all of them.
        let rows: Vec<(String, i64)> = stmt
            .query_map(params![table, pk, sk, (limit + 1) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(internal)?
            .collect::<Result<_, _>>()
            .map_err(internal)?;
        let mut page = Page::default();
        let mut bytes = 0;
        for (i, (text, size)) in rows.iter().enumerate() {
            if i == limit || bytes >= max_bytes {
                page.more = true;
                break;
            }
            bytes += *size as usize;
            page.items
                .push(dynamodb::decode_item(text).map_err(internal)?);
        }
        Ok(page)
    }

    /// One page of a partition in sort-key order (`forward`, or backward), after the
    /// sort key `after` when given: the items `keep` accepts (a key condition on the sort
    /// key), up to `limit` of them and about `max_bytes`. Rows are read one at a time from
    /// the index, so a page costs its own size, not its partition's.
    pub fn query(
        &self,
        table: &str,
        pk: &[u8],
        page: QueryPage<'_>,
        mut keep: impl FnMut(&Item) -> bool,
    ) -> Result<(Vec<(Item, usize)>, bool), AwsError> {
        let QueryPage {
            forward,
            after,
            limit,
            max_bytes,
        } = page;
        let conn = self.lock();
        let sql = match (forward, after.is_some()) {
            (true, true) => {
                "SELECT item, size FROM items WHERE tbl = ?1 AND pk = ?2 AND sk > ?3 ORDER BY sk"
            }
            (true, false) => "SELECT item, size FROM items WHERE tbl = ?1 AND pk = ?2 ORDER BY sk",
            (false, true) => {
                "SELECT item, size FROM items WHERE tbl = ?1 AND pk = ?2 AND sk < ?3 ORDER BY sk DESC"
            }
            (false, false) => {
                "SELECT item, size FROM items WHERE tbl = ?1 AND pk = ?2 ORDER BY sk DESC"
            }
        };
        let mut stmt = conn.prepare(sql).map_err(internal)?;
        let mut rows = match after {
            Some(sk) => stmt.query(params![table, pk, sk]),
            None => stmt.query(params![table, pk]),
        }
        .map_err(internal)?;
        let (mut out, mut bytes) = (Vec::new(), 0);
        while let Some(row) = rows.next().map_err(internal)? {
            if out.len() == limit || bytes >= max_bytes {
                return Ok((out, true));
            }
            let text: String = row.get(0).map_err(internal)?;
            let size: i64 = row.get(1).map_err(internal)?;
            let item = dynamodb::decode_item(&text).map_err(internal)?;
            if keep(&item) {
                bytes += size as usize;
                out.push((item, size as usize));
            }
        }
        // A page that filled up exactly still says there may be more, as DynamoDB does.
        let full = out.len() == limit;
        Ok((out, full))
    }

    /// Every table with its counts, for `bellows tables` and the metrics.
    pub fn all(&self) -> Result<Vec<TableStats>, AwsError> {
        let names = self.names()?;
        let mut out = Vec::new();
        for n in names {
            if let Some(s) = self.stats(&n)? {
                out.push(s);
            }
        }
        Ok(out)
    }
}

/// One transaction's view of the items.
#[derive(Debug)]
pub struct Txn<'c> {
    conn: &'c Connection,
}

impl Txn<'_> {
    pub fn get(&self, table: &str, key: &Key) -> Result<Option<Item>, AwsError> {
        get(self.conn, table, key)
    }

    pub fn put(
        &self,
        table: &str,
        key: &Key,
        item: Option<&(Item, usize)>,
    ) -> Result<(), AwsError> {
        put(self.conn, table, key, item)
    }
}

fn get(conn: &Connection, table: &str, key: &Key) -> Result<Option<Item>, AwsError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT item FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3",
            params![table, key.0, key.1],
            |r| r.get(0),
        )
        .optional()
        .map_err(internal)?;
    text.map(|t| dynamodb::decode_item(&t).map_err(internal))
        .transpose()
}

fn put(
    conn: &Connection,
    table: &str,
    key: &Key,
    item: Option<&(Item, usize)>,
) -> Result<(), AwsError> {
    match item {
        Some((item, size)) => conn.execute(
            "INSERT INTO items (tbl, pk, sk, item, size) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tbl, pk, sk) DO UPDATE SET item = excluded.item, size = excluded.size",
            params![
                table,
                key.0,
                key.1,
                dynamodb::encode_item(item),
                *size as i64
            ],
        ),
        None => conn.execute(
            "DELETE FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3",
            params![table, key.0, key.1],
        ),
    }
    .map_err(internal)?;
    Ok(())
}

fn counts(conn: &Connection, table: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM items WHERE tbl = ?1",
        [table],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn write_def(conn: &Connection, def: &TableDef) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO tables (name, hash_name, hash_type, range_name, range_type, billing, rcu, wcu, created, id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (name) DO UPDATE SET billing = excluded.billing, rcu = excluded.rcu, wcu = excluded.wcu",
        params![
            def.name,
            def.hash.name,
            def.hash.scalar.name(),
            def.range.as_ref().map(|r| r.name.clone()),
            def.range.as_ref().map(|r| r.scalar.name()),
            def.billing_mode,
            def.read_capacity,
            def.write_capacity,
            def.created,
            def.id,
        ],
    )?;
    Ok(())
}

/// The stored form of keys this build writes. 1: numbers as `Decimal::order_bytes`
/// (before, as their text, which does not sort as the numbers do).
const STORE_FORMAT: i64 = 1;

/// Brings a store written by an earlier build to `STORE_FORMAT`, in one transaction:
/// the keys of tables with a number in their key are stored again from their items.
fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let version: Option<i64> = conn
        .query_row("SELECT version FROM store_format", [], |r| r.get(0))
        .optional()?;
    if version == Some(STORE_FORMAT) {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    let names: Vec<String> = tx
        .prepare("SELECT name FROM tables")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for name in names {
        let Some(def) = read_def(&tx, &name)? else {
            continue;
        };
        let numeric = |k: &KeyAttr| k.scalar == Scalar::N;
        if !(numeric(&def.hash) || def.range.as_ref().is_some_and(numeric)) {
            continue;
        }
        let rows: Vec<(Vec<u8>, Vec<u8>, String)> = tx
            .prepare("SELECT pk, sk, item FROM items WHERE tbl = ?1")?
            .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let bad = |e: String| rusqlite::Error::ToSqlConversionFailure(e.into());
        for (pk, sk, text) in rows {
            let item = dynamodb::decode_item(&text).map_err(|e| bad(e.to_string()))?;
            let (npk, nsk) = def.item_key(&item).map_err(bad)?;
            tx.execute(
                "UPDATE items SET pk = ?4, sk = ?5 WHERE tbl = ?1 AND pk = ?2 AND sk = ?3",
                params![name, pk, sk, npk, nsk],
            )?;
        }
        tracing::info!(table = %name, "the table's keys are stored in the new form");
    }
    tx.execute("DELETE FROM store_format", [])?;
    tx.execute(
        "INSERT INTO store_format (version) VALUES (?1)",
        [STORE_FORMAT],
    )?;
    tx.commit()
}

fn read_def(conn: &Connection, name: &str) -> rusqlite::Result<Option<TableDef>> {
    conn.query_row(
        "SELECT name, hash_name, hash_type, range_name, range_type, billing, rcu, wcu, created, id
         FROM tables WHERE name = ?1",
        [name],
        |r| {
            let scalar = |s: String| Scalar::parse(&s).unwrap_or(Scalar::S);
            let range_name: Option<String> = r.get(3)?;
            let range_type: Option<String> = r.get(4)?;
            Ok(TableDef {
                name: r.get(0)?,
                hash: KeyAttr {
                    name: r.get(1)?,
                    scalar: scalar(r.get(2)?),
                },
                range: range_name.map(|name| KeyAttr {
                    name,
                    scalar: scalar(range_type.unwrap_or_default()),
                }),
                billing_mode: r.get(5)?,
                read_capacity: r.get(6)?,
                write_capacity: r.get(7)?,
                created: r.get(8)?,
                id: r.get(9)?,
            })
        },
    )
    .optional()
}

/// What DynamoDB calls consumed since the loop last took it: per table, read and write
/// capacity units, and per operation, latencies in milliseconds.
#[derive(Debug, Default)]
pub struct DynamoMetrics {
    inner: Mutex<Consumed>,
}

#[derive(Debug, Default, Clone)]
pub struct Consumed {
    /// Table -> (read units, write units).
    pub units: std::collections::BTreeMap<String, (f64, f64)>,
    /// (table, operation) -> latencies in milliseconds.
    pub latency: std::collections::BTreeMap<(String, String), Vec<f64>>,
}

impl DynamoMetrics {
    pub fn record(&self, units: &[(String, f64, f64)], table: &str, operation: &str, ms: f64) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (t, r, w) in units {
            let e = c.units.entry(t.clone()).or_default();
            e.0 += r;
            e.1 += w;
        }
        if !table.is_empty() {
            let v = c
                .latency
                .entry((table.to_owned(), operation.to_owned()))
                .or_default();
            if v.len() < 10_000 {
                v.push(ms);
            }
        }
    }

    /// Everything recorded since the last call.
    pub fn take(&self) -> Consumed {
        std::mem::take(&mut *self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> TableDef {
        TableDef {
            name: "scores".into(),
            hash: KeyAttr {
                name: "player".into(),
                scalar: Scalar::S,
            },
            range: Some(KeyAttr {
                name: "points".into(),
                scalar: Scalar::N,
            }),
            billing_mode: "PAY_PER_REQUEST".into(),
            read_capacity: 0,
            write_capacity: 0,
            created: 0.0,
            id: "t".into(),
        }
    }

    fn item(points: &str) -> Item {
        dynamodb::decode_item(&format!(
            r#"{{"player": {{"S": "ada"}}, "points": {{"N": "{points}"}}}}"#
        ))
        .unwrap()
    }

    fn points(page: &[(Item, usize)]) -> Vec<String> {
        page.iter()
            .map(|(i, _)| match &i["points"] {
                dynamodb::Attr::N(n) => n.to_string(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn bounds(forward: bool, after: Option<&[u8]>, limit: usize) -> QueryPage<'_> {
        QueryPage {
            forward,
            after,
            limit,
            max_bytes: usize::MAX,
        }
    }

    #[test]
    fn a_partition_pages_in_number_order_and_an_old_store_is_upgraded() {
        let dir = std::env::temp_dir().join(format!("bellows-tables-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dynamodb.db");
        let t = Tables::open(&path).unwrap();
        let d = def();
        t.create(&d).unwrap();
        // Written the way an earlier build did: a number key as its text (which sorts
        // 10 before 9 and -1 before -5).
        {
            let conn = t.lock();
            for p in ["9", "10", "-1", "-5", "0.5", "100"] {
                let i = item(p);
                let mut sk = b"N".to_vec();
                sk.extend(p.as_bytes());
                conn.execute(
                    "INSERT INTO items (tbl, pk, sk, item, size) VALUES ('scores', ?1, ?2, ?3, 10)",
                    params![b"Sada".to_vec(), sk, dynamodb::encode_item(&i)],
                )
                .unwrap();
            }
            conn.execute("DELETE FROM store_format", []).unwrap();
        }
        drop(t);
        let t = Tables::open(&path).unwrap();
        let pk = b"Sada".to_vec();
        let (all, more) = t
            .query("scores", &pk, bounds(true, None, 100), |_| true)
            .unwrap();
        assert_eq!(points(&all), ["-5", "-1", "0.5", "9", "10", "100"]);
        assert!(!more);
        // Every key is found under its new form.
        let key = d.item_key(&item("10")).unwrap();
        assert!(t.get("scores", &key).unwrap().is_some());
        // Pages of two, backward, each after the last one's key; a filter that skips.
        let (page, more) = t
            .query("scores", &pk, bounds(false, None, 2), |_| true)
            .unwrap();
        assert_eq!(
            (points(&page), more),
            (vec!["100".into(), "10".into()], true)
        );
        let after = d.item_key(&page[1].0).unwrap().1;
        let (page, _) = t
            .query("scores", &pk, bounds(false, Some(&after), 2), |i| {
                i["points"] != item("0.5")["points"]
            })
            .unwrap();
        assert_eq!(points(&page), ["9", "-1"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
